import pytest

from records.knowledge import KnowledgeError, load_knowledge, search_knowledge


def test_the_shipped_answers_load_and_a_keyword_finds_the_right_one():
    answers = load_knowledge()
    assert len(answers) >= 10
    assert search_knowledge(answers, "gas")[0].title == "Gas smell"
    assert search_knowledge(answers, "lift trapped")[0].title.startswith("Lift")
    assert search_knowledge(answers, "leak")[0].title == "Water leaking from the ceiling"   # prefix of leaking
    assert search_knowledge(answers, "late fee")[0].title.startswith("Paying the management fee")
    assert search_knowledge(answers, "zebra crossing") == []
    assert len(search_knowledge(answers, "  ")) == len(answers[:10])


@pytest.mark.parametrize("text, message", [
    ("answers: [", "line"),
    ("answers: {}", "expected 'answers:'"),
    ("answers:\n  - title: x\n", "answer 1 needs a 'title' and an 'answer'"),
    ("answers:\n  - title: x\n    answer: y\n    keywords: water\n", "'keywords' is a list"),
])
def test_a_broken_knowledge_file_is_named_with_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "kb.yaml"
    path.write_text(text)
    with pytest.raises(KnowledgeError, match=message) as caught:
        load_knowledge(path)
    assert str(path) in str(caught.value)


def test_a_missing_knowledge_file_says_so(tmp_path):
    with pytest.raises(KnowledgeError, match="cannot read it"):
        load_knowledge(tmp_path / "none.yaml")


def test_a_reply_time_an_answer_promises_is_the_service_standards_own():
    # found in a new user's trial: the fee answer said finance replies within 4 working
    # days, the seat's own billing deadline said 2
    import re

    from records.sla import load_policy

    promised = {rule.department.replace("_", " "): str(rule.reply_within)
                for rule in load_policy().types.values() if rule.reply_within is not None}
    said = [(department, days) for answer in load_knowledge()
            for department, days in re.findall(r"(\w[\w ]*?) replies within (\d+ working days?)", answer.text)]
    assert said, "no answer promises a reply time any more: this test needs another example"
    for department, days in said:
        assert promised[department] == days, (department, days, promised)
