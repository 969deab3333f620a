"""The graceful stop's agreement between replicas is traced once, and a Ctrl-C that lands
while fit ends still stops the run with its line (adder_tf.interrupt, adder_tf.strategy)."""
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from adder_tf.interrupt import GracefulStop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_stop_agreement_is_traced_once_per_strategy_not_at_every_step(monkeypatch, tmp_path):
    traces = []
    function = tf.function

    def counting(fn=None, **options):   # tf.function, counting the traces of the library's own
        def traced(*args, **kwargs):
            traces.append(fn.__qualname__)
            return fn(*args, **kwargs)
        return function(traced if fn.__module__ == "adder_tf.strategy" else fn, **options)

    monkeypatch.setattr(tf, "function", counting)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile("sgd", "mse")
    stop = GracefulStop(str(tmp_path / "backup"), strategy)
    with stop:   # 2 epochs of 4 steps: the agreement is asked after every step and epoch
        model.fit(np.zeros((32, 4), "float32"), np.zeros((32, 2), "float32"), batch_size=8,
                  epochs=2, verbose=0, callbacks=[stop])
    assert len(traces) == 1, traces


SIGINT_AT_FIT_END = """
import os, signal, sys
sys.path.insert(0, os.path.join(sys.argv[2], "train"))
import cli, keras, numpy as np
from adder_tf.checkpoint import AtomicBackupAndRestore
from adder_tf.interrupt import GracefulStop

class CtrlCAtTrainEnd(keras.callbacks.Callback):   # after the last epoch's end, before fit returns
    def on_train_end(self, logs=None):
        os.kill(os.getpid(), signal.SIGINT)

def main(argv):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    backup = AtomicBackupAndRestore(sys.argv[1])
    stop = GracefulStop(sys.argv[1])
    with stop:
        model.fit(np.zeros((16, 4), "float32"), np.zeros((16, 2), "float32"), batch_size=8,
                  epochs=2, verbose=0, callbacks=[backup, stop, CtrlCAtTrainEnd()])
    print("fit returned and the run went on", flush=True)

cli.run_main(main, [], lambda: False)
"""


def test_a_ctrl_c_while_fit_ends_exits_130_with_the_line_not_0(tmp_path):
    backup = str(tmp_path / "backup")
    out = subprocess.run([sys.executable, "-c", SIGINT_AT_FIT_END, backup, ROOT],
                         env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
                         capture_output=True, text=True, timeout=300,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert "fit returned and the run went on" not in out.stdout
    assert out.returncode == 130, (out.returncode, out.stderr[-2000:])
    # (the resume command, this script's command line, spans several lines)
    lines = [line for line in out.stderr.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, out.stderr[-2000:]
    kept = lines[0].split("; resume with: ")[0]
    assert kept == f"interrupted after epoch 2; kept the checkpoint of epoch 2 in {backup}"
