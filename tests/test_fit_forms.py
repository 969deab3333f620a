"""`fit` takes what `keras.Model.fit` takes, and ends with BatchNorm statistics of the weights.

Every input form Keras's `fit` reads goes through a plain keras.Model and
through ours (AdderModel, a subclassed model of one's own, and every
distiller of `adder_tf.distill`) side by side: ours must train and validate
where Keras does, or refuse in one sentence naming the form, and end with
every adder layer's BatchNorm describing the trained weights (`fit_forms`).
Each kind of model is built and compiled once (with one input and with two)
and put back to its compiled state before each form: every form starts from
the same weights and from BatchNorm statistics that cannot pass for
re-estimated ones.
"""
import pytest

from fit_forms import (FORMS, KINDS, REFUSED, assert_statistics_describe_the_weights,
                       fit_arguments, fresh, keras_fit)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", FORMS)
def test_fit_takes_what_keras_takes_and_ends_with_statistics_of_the_weights(form, kind):
    arguments, inputs, two = fit_arguments(form)
    refused = keras_fit(form)
    model, network = fresh(kind, two)
    if refused is not None:
        with pytest.raises(refused):
            model.fit(epochs=1, verbose=0, **arguments)
        return
    if (form, kind) in REFUSED:
        with pytest.raises(ValueError, match=REFUSED[form, kind]) as refusal:
            model.fit(epochs=1, verbose=0, **arguments)
        assert len(str(refusal.value).strip().splitlines()) == 1, str(refusal.value)
        return
    history = model.fit(epochs=1, verbose=0, **arguments)
    assert any(k.startswith("val_") for k in history.history), history.history
    assert_statistics_describe_the_weights(network, inputs)
