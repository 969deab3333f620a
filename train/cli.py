"""Shared by the command-line programs: import path, quiet TF, one-line errors."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no CUDA-probe noise on CPU hosts
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def import_tensorflow_quietly():
    """Import TensorFlow with stderr closed, unless --debug is on the command line.

    TensorFlow's C++ start-up lines (oneDNN, CUDA probe: 'I0000 ...') are
    written before its logging is configured and ignore TF_CPP_MIN_LOG_LEVEL;
    they would open every command. Errors later on are not affected. Call
    it after the flags are checked, so a bad flag still fails at once.
    """
    if any(a in ("--debug", "--debug=true", "--debug=True") for a in sys.argv[1:]):
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)



HELP_FLAGS = ("--help", "-?", "--helpshort", "--helpfull", "-help")

# Exit statuses: 0 done, 2 bad input, 130 interrupted (the shell's 128 + SIGINT),
# 1 anything unexpected.
EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_UNEXPECTED = 2, 130, 1


def parse_flags(argv):
    """absl's parser, with a bad or unreadable flag reported in one line; --help exits 0."""
    from absl import flags
    try:
        return flags.FLAGS(argv)
    except SystemExit:
        if any(a.split("=")[0] in HELP_FLAGS for a in argv[1:]):
            sys.exit(0)   # absl exits 1 after printing the help a user asked for
        raise
    except flags.Error as e:
        message = " ".join(str(e).replace("ERROR:: ", "").split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def run_main(main, argv, debug):
    """Calls main(argv); a failure is one line on stderr and a non-zero status.

    UserError (bad input) carries its own message: status 2. Ctrl-C: 130,
    one line saying what was kept and the command that resumes. A lost
    worker (several workers): its own line, status 1. Anything else is
    unexpected and is shown as its type and first line (status 1), with
    --debug for the traceback.
    """
    from absl import logging
    from adder_tf.errors import UserError
    logging.set_verbosity(logging.WARNING)
    if debug():
        import keras
        keras.config.disable_traceback_filtering()
    try:
        main(argv)
    except UserError as e:
        if debug():
            raise
        _fail(f"error: {e}", EXIT_BAD_INPUT)
    except KeyboardInterrupt as e:
        done = str(e) or "interrupted; kept what the last completed epoch saved"
        _fail(f"{done}; resume with: {resume_command()}", EXIT_INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the one place that turns crashes into a line
        # Imported here: adder_tf.strategy loads TensorFlow, which main() imports quietly.
        from adder_tf.strategy import WorkerLost
        if isinstance(e, WorkerLost):
            # At once: a normal exit waits for the lost peer at TensorFlow's shutdown barrier
            # (up to --worker_timeout more); every file is already whole on disk.
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(EXIT_UNEXPECTED)
        if debug():
            raise
        _fail(f"error: {type(e).__name__}: {_first_line(e)} (rerun with --debug for the "
              "traceback)", EXIT_UNEXPECTED)


def resume_command():
    """The command line that started this process (the same command resumes)."""
    import shlex
    return shlex.join(sys.orig_argv)


def _first_line(error):
    """The error's first telling line. Keras wraps an exception raised inside a layer
    as 'Exception encountered when calling X.call().', then the original message
    (in bold), then the arguments: that message is the line to show."""
    import re
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        return f"{lines[1][:300]} (in {lines[0].split('calling ', 1)[1].rstrip('.')})"
    return (lines or [""])[0][:300]


def _fail(message, status):
    print(message, file=sys.stderr)
    sys.exit(status)
