"""The directory from the command line: bootstrap, actors, groups, locations, availability; both engines."""




def test_bootstrap_first_admin_then_admin_only(desk):
    # before any admin exists, only an admin may be added, by anybody
    result = desk.run("user", "add", "alice", as_="nobody")
    assert result.exit_code == 5 and "admin role (--role)" in result.stderr
    desk.ok("user", "add", "root", "--role", "admin", as_="nobody")
    # now only admins add users
    assert desk.run("user", "add", "eve", as_="nobody").exit_code == 5
    desk.ok("user", "add", "alice")
    assert desk.run("user", "add", "bob", as_="alice").exit_code == 5
    assert desk.run("user", "add", "alice").exit_code == 4
    handles = [u["handle"] for u in desk.json("user", "list")]
    assert handles == ["alice", "root"]


def test_unknown_actor_is_exit_5_and_invalid_handle_exit_2(seeded):
    assert seeded.run("list", as_="mallory").exit_code == 5
    assert seeded.run("user", "add", "Bad Handle").exit_code == 2


def test_groups_locations_membership(seeded):
    groups = {g["name"]: g for g in seeded.json("group", "list")}
    assert groups["billing"]["location"] == "paris"
    assert groups["billing"]["members"] == 2
    seeded.ok("group", "add-member", "sales", "alice")
    alice = seeded.json("user", "show", "alice")[0]
    assert alice["groups"] == ["billing", "sales"]
    seeded.ok("group", "remove-member", "sales", "alice")
    assert seeded.run("group", "remove-member", "sales", "alice").exit_code == 3
    assert seeded.run("group", "add", "x", "--location", "mars").exit_code == 3
    assert seeded.run("group", "add", "billing").exit_code == 4
    locations = seeded.json("location", "list")
    assert [loc["name"] for loc in locations] == ["lyon", "paris"]


def test_availability_and_login(seeded):
    assert seeded.json("availability", as_="alice")[0]["availability"] == "available"
    seeded.ok("availability", "set", "away", as_="alice")
    assert seeded.json("availability", "--user", "alice")[0]["availability"] == "away"
    assert seeded.run("availability", "set", "sleeping", as_="alice").exit_code == 2
    # agents cannot set someone else's; supervisors can
    assert seeded.run("availability", "set", "offline", "--user", "bob", as_="alice").exit_code == 5
    seeded.ok("availability", "set", "offline", "--user", "bob", as_="carol")
    seeded.ok("availability", "--default", "away", as_="bob")
    assert seeded.json("login", as_="bob")[0]["availability"] == "away"
