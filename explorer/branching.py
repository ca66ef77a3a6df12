"""Branching generation: "what if GPT-2 had picked the second-best token?", as a tree.

In step mode each step draws one token from the next-token distribution. A learner may
instead pick any of the top alternatives shown for that step and continue from there.
Every choice is kept, so the texts tried form a tree:

    root          the prompt (no probability: nothing chose it)
    a node        one generated token: its id, its text, the probability it had when it was
                  chosen, and the top alternatives of the distribution it was chosen from
    its children  the tokens tried after it

The learner is always at one node (`current`); the text so far is the path from the root
to it. `extend` adds the next token below the current node, `branch` swaps the current
node for one of its alternatives (a sibling: same parent, same distribution), `go_to` goes
back to any node. Choosing a token that was already tried at that point returns to that
node instead of making a copy.

This module is pure Python: the caller runs the model on `model_input(n_ctx)` and hands
back the token and the alternatives. A tree is bounded, in nodes and in depth, so one
visitor's session cannot grow without end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gpt2.generate import window_length

MAX_NODES = 1000  # tokens kept in one tree, every branch together
MAX_DEPTH = 256  # tokens after the prompt on one path
MAX_ALTERNATIVES = 20  # alternatives kept per step (the UI shows the top few)


class BranchLimitError(ValueError):
    """The tree is full (too many nodes or too deep): the message says which limit and what to do."""


@dataclass(frozen=True)
class Alternative:
    token_id: int
    text: str
    prob: float


@dataclass
class Node:
    index: int
    parent: int | None  # None for the root
    token_id: int | None  # None for the root
    text: str
    prob: float  # the probability it had when it was chosen (1.0 for the root)
    depth: int  # tokens after the prompt, 0 for the root
    alternatives: tuple[Alternative, ...] = ()  # the top of the distribution it was chosen from
    children: list[int] = field(default_factory=list)


def _check_alternatives(alternatives: Sequence[Alternative]) -> tuple[Alternative, ...]:
    alternatives = tuple(alternatives)
    if len(alternatives) > MAX_ALTERNATIVES:
        raise ValueError(f"alternatives: at most {MAX_ALTERNATIVES} per step, got {len(alternatives)}")
    for alternative in alternatives:
        if not 0.0 <= alternative.prob <= 1.0:
            raise ValueError(f"alternatives: a probability must be in [0, 1], got {alternative.prob}")
    return alternatives


def model_window(ids: list[int], n_ctx: int) -> list[int]:
    """The ids the model reads to predict the token after `ids`: the sliding window of
    gpt2/generate.py (`window_length`), the one rule generation and step mode follow."""
    return ids[-window_length(len(ids), n_ctx):]


class BranchTree:
    """Every token tried in step mode after one prompt, and where the learner is now."""

    def __init__(self, prompt_ids: Sequence[int], prompt_text: str, max_nodes: int = MAX_NODES,
                 max_depth: int = MAX_DEPTH):
        if not prompt_ids:
            raise ValueError("the prompt is empty: give at least one token")
        self.prompt_ids = list(prompt_ids)
        self.max_nodes, self.max_depth = max_nodes, max_depth
        self.nodes = [Node(0, None, None, prompt_text, 1.0, 0)]
        self.current = 0

    # ---- reading ----

    def node(self, index) -> Node:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.nodes):
            raise ValueError(f"node must be a whole number from 0 to {len(self.nodes) - 1}, got {index!r}")
        return self.nodes[index]

    def path(self, index: int | None = None) -> list[Node]:
        """The nodes from the root to `index` (default: the current node)."""
        node = self.node(self.current if index is None else index)
        path = [node]
        while node.parent is not None:
            node = self.nodes[node.parent]
            path.append(node)
        return path[::-1]

    def path_ids(self, index: int | None = None) -> list[int]:
        """The prompt's ids followed by the tokens on the path to `index` (default: the current node)."""
        return self.prompt_ids + [node.token_id for node in self.path(index)[1:]]

    def text(self, index: int | None = None) -> str:
        return "".join(node.text for node in self.path(index))

    def model_input(self, n_ctx: int) -> list[int]:
        """What the model reads to predict the token after the current node."""
        return model_window(self.path_ids(), n_ctx)

    def plot_data(self) -> tuple[list[int | None], list[str], list[float], int]:
        """parents, labels, probabilities and the current node, as plots.branch_tree takes them."""
        return ([n.parent for n in self.nodes], [n.text for n in self.nodes], [n.prob for n in self.nodes],
                self.current)

    # ---- changing ----

    def _add(self, parent: Node, token_id: int, text: str, prob: float, alternatives) -> Node:
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise ValueError(f"token_id must be a whole number >= 0, got {token_id!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        for child in parent.children:  # tried before at this point: go back there
            if self.nodes[child].token_id == token_id:
                return self.nodes[child]
        if parent.depth + 1 > self.max_depth:
            raise BranchLimitError(f"a branch holds at most {self.max_depth} tokens after the prompt; "
                                   "go back to an earlier token to try another path")
        if len(self.nodes) >= self.max_nodes:
            raise BranchLimitError(f"this tree holds at most {self.max_nodes} tokens; "
                                   "start again from the prompt to explore more")
        node = Node(len(self.nodes), parent.index, token_id, text, float(prob), parent.depth + 1,
                    _check_alternatives(alternatives))
        self.nodes.append(node)
        parent.children.append(node.index)
        return node

    def extend(self, token_id: int, text: str, prob: float, alternatives: Sequence[Alternative] = ()) -> Node:
        """Add the token drawn after the current node (with the top alternatives it was drawn from); move to it."""
        node = self._add(self.nodes[self.current], token_id, text, prob, alternatives)
        self.current = node.index
        return node

    def branch(self, index: int, alternative: int) -> Node:
        """Replace node `index` by its alternative number `alternative` (0 = the most likely); move there."""
        node = self.node(index)
        if node.parent is None:
            raise ValueError("the prompt has no alternatives: branch from a generated token")
        if isinstance(alternative, bool) or not isinstance(alternative, int) \
                or not 0 <= alternative < len(node.alternatives):
            raise ValueError(f"alternative must be 0 to {len(node.alternatives) - 1} for this token, got {alternative!r}")
        picked = node.alternatives[alternative]
        sibling = self._add(self.nodes[node.parent], picked.token_id, picked.text, picked.prob, node.alternatives)
        self.current = sibling.index
        return sibling

    def go_to(self, index: int) -> Node:
        """Go back (or forward) to any node of the tree."""
        node = self.node(index)
        self.current = node.index
        return node
