import pytest

from records.agents import (AgentError, add_agent, check_login, hash_pin, list_agents, parse_skills,
                            remove_agent, set_pin, update_agent, verify_pin)


def test_pin_hashes_are_salted_scrypt_and_verify():
    first, second = hash_pin("2468"), hash_pin("2468")
    assert first != second and first.startswith("scrypt$") and "2468" not in first
    assert verify_pin("2468", first) and verify_pin("2468", second)
    assert not verify_pin("2469", first)
    assert not verify_pin("2468", "garbage") and not verify_pin("2468", "md5$1$2$3$4$5")
    assert hash_pin("2468", salt=b"s" * 16) == hash_pin("2468", salt=b"s" * 16)


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4", "", " 1234"])
def test_pin_format(pin):
    with pytest.raises(AgentError, match="4 to 8 digits"):
        hash_pin(pin)


def test_parse_skills():
    assert parse_skills("repair:3, complaint:2,billing") == {"repair": 3, "complaint": 2, "billing": 3}
    assert parse_skills("") == {}
    for bad, message in (("plumbing:2", "unknown skill"), ("repair:9", "1-5"), ("repair:x", "a number"),
                         ("repair:2,repair:3", "twice")):
        with pytest.raises(AgentError, match=message):
            parse_skills(bad)


def test_the_pin_is_also_the_sip_password(db):
    from records.agents import sip_ha1, sip_secret
    add_agent(db, ext="1001", name="Ann", pin="2468")
    assert sip_secret(db, "1001") == sip_ha1("1001", "2468") == __import__("hashlib").md5(b"1001:hotline:2468").hexdigest()
    set_pin(db, "1001", "1357")
    assert sip_secret(db, "1001") == sip_ha1("1001", "1357")
    update_agent(db, "1001", new_ext="1009")   # the HA1 names the extension: it needs a new PIN
    assert sip_secret(db, "1009") is None and sip_secret(db, "1001") is None


def test_agent_lifecycle(db):
    add_agent(db, ext="1001", name="Ann Lee", pin="1234", skills={"repair": 4})
    with pytest.raises(AgentError, match="already taken"):
        add_agent(db, ext="1001", name="Other", pin="1234")
    with pytest.raises(AgentError, match="2 to 8 digits"):
        add_agent(db, ext="10a", name="Other", pin="1234")
    with pytest.raises(AgentError, match="unknown role"):
        add_agent(db, ext="1002", name="Other", pin="1234", role="boss")
    assert check_login(db, "1001", "1234")["name"] == "Ann Lee"
    assert check_login(db, "1001", "9999") is None and check_login(db, "1009", "1234") is None
    update_agent(db, "1001", role="supervisor", skills={"billing": 2, "repair": 5}, new_ext="1005")
    [agent] = list_agents(db)
    assert (agent["ext"], agent["role"], agent["skills"]) == ("1005", "supervisor", {"billing": 2, "repair": 5})
    set_pin(db, "1005", "5555")
    assert check_login(db, "1005", "5555") and not check_login(db, "1005", "1234")
    remove_agent(db, "1005")
    assert list_agents(db) == [] and check_login(db, "1005", "5555") is None
    add_agent(db, ext="1005", name="New Person", pin="1111")  # extension released
    with pytest.raises(AgentError, match="no agent with extension 1777"):
        update_agent(db, "1777", name="x")
