"""--verbose's default: Keras's progress bar on a terminal, one line per epoch otherwise.

A run written to a log file used to get the bar redrawn at every step
(megabytes per run). Both cases run the command line in a fresh process:
once with stdout a pipe, once with stdout a pseudo-terminal.
"""
import os
import pty
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--dataset=digits", "--arch=resnet8", "--method=ann", "--epochs=2",
         "--steps_per_epoch=3", "--batch_size=32", "--bn_reestimation_steps=0"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _main(*args):
    return [sys.executable, os.path.join("train", "main.py"), *SMALL, *args]


def test_no_terminal_gets_one_line_per_epoch(tmp_path):
    out = subprocess.run(_main(f"--model_dir={tmp_path}"), cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert [line.split(" | ")[0] for line in lines if line.startswith("epoch ")] == [
        "epoch 1/2", "epoch 2/2"], out.stdout
    assert "\r" not in out.stdout and "\b" not in out.stdout, out.stdout   # no redrawn bar
    assert "step" not in out.stdout, out.stdout                          # Keras's bar says "3/3 ... step"
    assert len(lines) == 3, lines   # two epoch lines and the summary


def test_terminal_gets_the_progress_bar(tmp_path):
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(_main(f"--model_dir={tmp_path}"), cwd=ROOT, env=ENV,
                                stdout=follower, stderr=subprocess.PIPE, text=False)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:   # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        stderr = proc.stderr.read().decode(errors="replace")
        assert proc.wait(timeout=600) == 0, stderr[-3000:]
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode(errors="replace")
    assert "Epoch 1/2" in shown and "Epoch 2/2" in shown, shown     # Keras's own header
    assert "3/3" in shown and "step" in shown, shown                  # ... and its bar
    assert "epoch 1/2 |" not in shown, shown                          # not our log line
