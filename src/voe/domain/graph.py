"""Start dependencies of a group: a DAG, checked for cycles, walked in levels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycle(depends: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Return one cycle as a closed path (``[a, b, a]``), or None.

    Iterative depth-first search, so a 10,000-member group cannot overflow
    the stack; nodes are visited in sorted order so the reported cycle is the
    same on every run.
    """
    graph = {k: sorted(set(v)) for k, v in depends.items()}
    WHITE, GREY, BLACK = 0, 1, 2
    colour: dict[str, int] = {}
    for root in sorted(graph):
        if colour.get(root, WHITE) != WHITE:
            continue
        path: list[str] = [root]
        stack = [iter(graph.get(root, []))]
        colour[root] = GREY
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                stack.pop()
                continue
            state = colour.get(nxt, WHITE)
            if state == GREY:
                return path[path.index(nxt) :] + [nxt]
            if state == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                stack.append(iter(graph.get(nxt, [])))
    return None


def levels(members: Iterable[str], depends: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Members grouped by depth: level 0 needs nothing, level n needs only
    members of levels < n. Assumes no cycle (call ``find_cycle`` first)."""
    members = list(members)
    depth: dict[str, int] = {}

    def depth_of(m: str) -> int:
        # iterative post-order to avoid recursion limits
        stack = [m]
        while stack:
            cur = stack[-1]
            deps = [d for d in depends.get(cur, []) if d not in depth]
            if deps:
                stack.extend(deps)
                continue
            depth[cur] = 1 + max((depth[d] for d in depends.get(cur, [])), default=-1)
            stack.pop()
        return depth[m]

    out: dict[int, list[str]] = {}
    for m in members:
        out.setdefault(depth_of(m), []).append(m)
    return [sorted(out[k]) for k in sorted(out)]
