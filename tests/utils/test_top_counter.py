import random

from bkvy.utils.top_counter import OTHER, TopCounter


def test_distinct_names_beyond_the_bound_go_to_other_and_the_total_stays_exact() -> None:
    counter = TopCounter(max_keys=10)
    for n in range(10_000):
        counter.add(f"one-off-{n}")
    assert len(counter.counts) <= 20  # the table never holds more than twice the bound
    top = counter.top()
    assert len(top) == 11 and top[OTHER] == 10_000 - 10
    assert sum(top.values()) == counter.total() == 10_000


def test_names_that_keep_coming_back_are_kept_among_one_off_names() -> None:
    # A name is kept once it comes twice among max_keys new names; it may miss a few counts before that.
    counter = TopCounter(max_keys=20)
    heavy = {f"team-{n}": 100 + n for n in range(5)}
    arrivals = [name for name, count in heavy.items() for _ in range(count)]
    arrivals += [f"flood-{n}" for n in range(5_000)]
    random.Random(7).shuffle(arrivals)
    for name in arrivals:
        counter.add(name)
    top = counter.top()
    assert set(list(top)[:5]) == set(heavy) and list(top)[-1] == OTHER
    assert all(heavy[name] // 2 <= top[name] <= heavy[name] for name in heavy)
    assert sum(top.values()) == len(arrivals)


def test_a_name_called_other_is_counted_in_the_other_bucket() -> None:
    counter = TopCounter(max_keys=2)
    counter.update([(OTHER, 3), ("a", 1)])
    assert counter.top() == {"a": 1, OTHER: 3}


def test_merge_and_reload_keep_the_bound_and_the_total() -> None:
    first, second = TopCounter(3), TopCounter(3)
    first.update((f"a{n}", n + 1) for n in range(6))
    second.update((f"b{n}", 10 * (n + 1)) for n in range(6))
    first.merge(second)
    top = first.top()
    assert list(top) == ["b5", "b4", "b3", OTHER] and sum(top.values()) == 21 + 210
    reloaded = TopCounter.from_mapping({f"k{n}": 1 for n in range(100)} | {OTHER: 7}, max_keys=4)
    assert len(reloaded.counts) == 4 and reloaded.total() == 107
