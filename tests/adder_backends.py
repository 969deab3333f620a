"""The adder op's backends as a pytest fixture: each test runs on the reference
path and on the compiled one (skipped, with the reason, where it cannot be
built, unless ADDER_TF_REQUIRE_FAST=1 makes that a failure)."""
import os

import pytest

from adder_tf import ops as adder_ops
from adder_tf.ops import adder_fast

BACKENDS = ["reference", "fast"]


def need_fast():
    """Skip, naming the reason, where the compiled op cannot be built; fail
    instead with ADDER_TF_REQUIRE_FAST=1 (where it must be)."""
    if adder_ops.fast_available():
        return
    reason = f"fast adder op unavailable: {adder_fast.build_info()['error']}"
    if os.environ.get("ADDER_TF_REQUIRE_FAST") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def backend(request):
    name = request.param
    if name == "fast":
        need_fast()
    previous = adder_ops.get_backend()
    adder_ops.set_backend(name)
    yield name
    adder_ops.set_backend(previous)


# ------------------------------------------------------------ numpy reference
