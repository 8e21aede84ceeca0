import pytest

from runtime import GenerationParams, InvalidParameters


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("temperature", -0.1, "temperature must be between 0 and 5"),
        ("temperature", float("nan"), "finite"),
        ("top_p", 1.5, "top_p must be between 0 and 1"),
        ("top_p", 0.0, "top_p must be above 0"),
        ("top_k", -1, "top_k must be between"),
        ("top_k", 2.5, "top_k must be a number"),
        ("min_p", 2, "min_p must be between 0 and 1"),
        ("repeat_penalty", 0, "repeat_penalty must be above 0"),
        ("seed", -5, "seed must be between"),
        ("max_tokens", 0, "max_tokens must be between 1"),
        ("max_tokens", True, "max_tokens must be a number"),
        ("stop", ("",), "stop strings must be non-empty"),
        ("stop", tuple("abcdefghijklmnopq"), "at most 16 stop strings"),
        ("context_overflow", "truncate", "context_overflow must be"),
    ],
)
def test_out_of_range_values_are_refused_with_the_field_named(field, value, words):
    with pytest.raises(InvalidParameters, match=words):
        GenerationParams(**{field: value})


def test_valid_params_round_trip_through_a_dict():
    p = GenerationParams(temperature=0.0, top_k=1, seed=7, stop="###", max_tokens=None)
    assert p.stop == ("###",)
    assert GenerationParams.from_dict(p.to_dict()) == p


def test_unknown_field_is_named():
    with pytest.raises(InvalidParameters, match="temprature"):
        GenerationParams.from_dict({"temprature": 1.0})
