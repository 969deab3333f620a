"""Shared by the command-line programs: import path, quiet TF, one-line errors."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no CUDA-probe noise on CPU hosts
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_flags(argv):
    """absl's parser, with a bad or unreadable flag reported in one line."""
    from absl import flags
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        message = " ".join(str(e).replace("ERROR:: ", "").split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def run_main(main, argv, debug):
    """Calls main(argv); a failure is one line on stderr and exit status 2.

    UserError carries its own message; anything else is unexpected and is
    shown as its type and first line, with --debug for the traceback.
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
        _fail(f"error: {e}")
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume")
    except Exception as e:  # noqa: BLE001 - the one place that turns crashes into a line
        if debug():
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        _fail(f"error: {type(e).__name__}: {first} (rerun with --debug for the traceback)")


def _fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)
