"""Bad values of every optimizer, scheduler and loss option, refused in-process naming their key (the corpus:
bad_cases.py; the other groups are in test_values_model_and_data.py)."""

from __future__ import annotations

import pytest

from bad_cases import TRAINING_GROUPS, assert_value_refused, generated_cases

CASES = generated_cases(TRAINING_GROUPS, top_level=False)


@pytest.mark.parametrize(("overrides", "culprit"), CASES, ids=[" ".join(o) for o, _ in CASES])
def test_a_bad_value_is_refused_naming_its_key(overrides, culprit):
    assert_value_refused(overrides, culprit)
