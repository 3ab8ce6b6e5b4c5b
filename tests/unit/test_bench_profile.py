"""bench/profile.py: the summary of py-spy's collapsed stacks."""
from bench.profile import frame_name, summarise

FOLDED = """\
<module> (services/chat/main.py:40);send_message (services/chat/domain/messaging.py:63);find_one (pymongo/asynchronous/collection.py:10) 6
<module> (services/chat/main.py:40);send_message (services/chat/domain/messaging.py:63) 2
<module> (services/chat/main.py:40);publish (shared/broker.py:90) 2
"""


def test_frame_names_keep_the_function_and_the_file():
    assert frame_name("send_message (services/chat/domain/messaging.py:63)") == "send_message messaging.py"
    assert frame_name("<module>") == "<module>"


def test_summary_counts_inclusive_and_self_samples_as_shares():
    summary = summarise(FOLDED)
    lines = summary.splitlines()
    assert lines[0] == "10 samples"
    inclusive = lines[lines.index("-- inclusive") + 1: lines.index("-- self")]
    own = lines[lines.index("-- self") + 1:]
    assert inclusive[:3] == ["100.0%  <module> main.py", " 80.0%  send_message messaging.py",
                             " 60.0%  find_one collection.py"]
    assert own[0] == " 60.0%  find_one collection.py"
    assert sorted(own[1:]) == [" 20.0%  publish broker.py", " 20.0%  send_message messaging.py"]


def test_no_samples_says_so():
    assert summarise("") == "no samples"
