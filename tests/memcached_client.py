"""pymemcache against Stratus's Memcached port (run by tests/memcached.rs).

Usage: memcached_client.py <host:port> <cache> <token>

Authenticates with memcached's text-protocol authentication (a `set` whose
value is "<user> <password>"), then exercises get/set/cas/gets/incr/decr/
delete/touch/get_many/set_many/add/replace/append/prepend/flush_all/stats.
Prints "pymemcache ok" when every check passed.
"""

import sys

from pymemcache.client.base import Client


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    cache, token = sys.argv[2], sys.argv[3]
    c = Client((host, int(port)), default_noreply=False, connect_timeout=5, timeout=5)

    # Before authenticating: refused.
    try:
        c.get("k")
        raise AssertionError("unauthenticated get answered")
    except Exception as e:  # pymemcache raises on CLIENT_ERROR
        assert "unauthenticated" in str(e), e
    c.close()

    c = Client((host, int(port)), default_noreply=False, connect_timeout=5, timeout=5)
    assert c.set("auth", f"{cache} {token}".encode()) is True
    assert c.get("auth") is None, "the authentication set stores nothing"

    assert c.set("k", b"v1", expire=100) is True
    assert c.get("k") == b"v1"
    value, cas = c.gets("k")
    assert value == b"v1" and int(cas) > 0
    assert c.cas("k", b"v2", cas) is True
    assert c.cas("k", b"v3", cas) is False, "a stale CAS is refused"
    assert c.get("k") == b"v2"
    assert c.cas("missing", b"x", cas) is None

    assert c.add("k", b"x") is False
    assert c.add("new", b"n") is True
    assert c.replace("nope", b"x") is False
    assert c.replace("new", b"m") is True
    assert c.append("new", b"+") is True
    assert c.prepend("new", b"-") is True
    assert c.get("new") == b"-m+"

    assert c.set("n", b"10") is True
    assert c.incr("n", 5) == 15
    assert c.decr("n", 20) == 0
    assert c.incr("missing", 1) is None
    assert c.incr("n", 2**64 - 1) == 2**64 - 1
    assert c.incr("n", 1) == 0, "incr wraps at 64 bits"

    assert c.touch("k", 10) is True
    assert c.touch("missing", 10) is False
    assert c.delete("k") is True
    assert c.delete("k") is False
    assert c.get("k") is None

    many = {f"m{i}": f"value{i}".encode() for i in range(50)}
    assert c.set_many(many) == []
    got = c.get_many(list(many) + ["absent"])
    assert got == many, got
    assert c.delete_many(list(many)) is True
    assert c.get_many(list(many)) == {}

    # Flags survive (pymemcache's serde stores ints with flag 2).
    assert c.set("int", 42) is True
    assert c.get("int") in (b"42", 42)

    stats = c.stats()
    assert int(stats[b"curr_items"]) >= 1, stats
    assert c.version().startswith(b"1.6")
    assert c.flush_all() is True
    assert c.get("new") is None
    c.close()
    print("pymemcache ok")


if __name__ == "__main__":
    main()
