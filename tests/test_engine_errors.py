"""Errors cross the engine pipe whole: the child sends the exception itself (pickled, the way
the pipe carries everything), so the parent raises the same class with the same message and
attributes, from any layer; anything that is not one of ours arrives as a plain sentence."""

from __future__ import annotations

import pickle

from models.errors import FiresideError
from models.hub import DiskFull
from quant.errors import NotEnoughSpace
from runtime.engine_child import whole_error
from runtime.errors import ContextOverflow


def crossed(exc: BaseException) -> BaseException:
    return pickle.loads(pickle.dumps(whole_error(exc)))


def test_our_errors_from_every_layer_arrive_as_themselves() -> None:
    for exc in (
        ContextOverflow("the conversation needs 9000 tokens; the model holds 8192"),
        NotEnoughSpace("not enough free disk space"),
        DiskFull("the disk is full"),
    ):
        exc.needed = 9000  # type: ignore[attr-defined]
        back = crossed(exc)
        assert type(back) is type(exc)
        assert str(back) == str(exc)
        assert back.needed == 9000  # type: ignore[attr-defined]


def test_an_error_that_cannot_be_pickled_keeps_its_words() -> None:
    exc = ContextOverflow("too long for this model")
    exc.hook = lambda: None  # type: ignore[attr-defined]
    back = crossed(exc)
    assert isinstance(back, FiresideError)
    assert str(back) == "too long for this model"


def test_anything_else_arrives_as_a_plain_sentence() -> None:
    back = crossed(KeyError("n_vocab"))
    assert isinstance(back, FiresideError)
    assert "n_vocab" in str(back)
    assert "KeyError" not in str(back)
    assert str(back).startswith("the engine failed")
