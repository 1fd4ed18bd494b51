import torch

from sdlab.exercises import CORRECT, NOT_ATTEMPTED, WRONG, check_answer


def test_not_attempted_correct_and_wrong(capsys):
    assert check_answer("ex", None, 3) == NOT_ATTEMPTED
    assert check_answer("ex", 3.0001, 3) == CORRECT
    assert check_answer("ex", 4, 3, hint="count again") == WRONG
    assert "not quite -- count again" in capsys.readouterr().out


def test_tensors_predicates_and_malformed_answers():
    assert check_answer("t", torch.ones(2), torch.ones(2)) == CORRECT
    assert check_answer("t", torch.ones(3), torch.ones(2)) == WRONG
    assert check_answer("p", "red", predicate=lambda a: a.startswith("r")) == CORRECT
    assert check_answer("p", 5, predicate=lambda a: a.startswith("r")) == WRONG
    assert check_answer("s", "blue", "red") == WRONG


def test_verdict_is_printed_once_not_shown_again_as_the_cells_value(capsys):
    verdict = check_answer("ex", None, 3)
    assert capsys.readouterr().out == f"ex: {NOT_ATTEMPTED}\n"
    assert verdict == NOT_ATTEMPTED and hasattr(verdict, "_ipython_display_")  # IPython calls it instead of echoing
