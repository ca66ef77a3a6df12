"""Branching generation in step mode: take one of the top alternatives instead of the drawn token,
and go back to any token tried (explorer/branching.py holds the tree; this module its controls).

Every Step adds the drawn token below the current node, with the top alternatives of the
distribution it came from. "Take this instead" swaps the last token for an alternative (a
sibling: same point, same distribution); "Go back" moves to any node. Either way the step
state's ids become the path to the new node, so the next Step continues from there. Each
node's probability is the model's own (temperature 1, before top-k/top-p), so branches drawn
with different settings compare. A visitor's tree is bounded (branching.MAX_NODES, MAX_DEPTH).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from ... import panels, plots
from ...analysis import labels_for
from ...branching import Alternative, BranchLimitError, BranchTree
from .controls import Dropdown
from .shared import Shared, user_errors

ALTERNATIVES = 8  # shown for each step
NO_TREE = "Press Step to draw a token; its alternatives appear here."


class TreeChoice(Dropdown):
    """A choice among the tree's current options; nothing chosen (None) reaches the handler, which says why."""

    is_template = True

    def preprocess(self, payload):
        return None if payload is None else super().preprocess(payload)


@dataclass
class Branches:
    """What the Generate tab's step handler needs from this panel."""

    tree: gr.State
    outputs: list
    after_step: object  # (loaded, step state, anatomy, tree) -> dict of updates


def _alternatives(label, probs: np.ndarray) -> tuple[Alternative, ...]:
    return tuple(Alternative(int(i), label(int(i)), float(probs[i])) for i in panels.most_likely(probs, ALTERNATIVES))


def build_branches(shared: Shared, step_state: gr.State, output: gr.Textbox, reset_button: gr.Button,
                   step_plot: gr.Plot | None = None) -> Branches:
    """`step_plot`, the last step's distribution, is cleared when the learner goes back: it no longer shows
    where the text is."""
    with gr.Accordion("Branches: what if the model had picked another token?", open=True):
        with gr.Row(equal_height=True):
            alternative = TreeChoice([], label="Instead of the last token, take", elem_id="branch-alternative")
            take = gr.Button("Take this instead", elem_id="branch-take")
            node = TreeChoice([], label="Go back to token", elem_id="branch-node")
            go = gr.Button("Go back", elem_id="branch-go")
        tree_plot = gr.Plot(label="Branch tree", show_label=False, elem_id="branch-tree")
    tree_state = gr.State(None, time_to_live=1800)  # a BranchTree

    def updates(loaded, state, tree: BranchTree) -> dict:
        state.ids = tree.path_ids()  # the next Step continues from the current node
        current = tree.node(tree.current)
        choices = [(f"{a.text}  ({panels.percent(a.prob)})", str(rank)) for rank, a in enumerate(current.alternatives)]
        nodes = [(f"{n.index}: {'prompt' if n.parent is None else n.text} (step {n.depth})", str(n.index))
                 for n in tree.nodes]
        return {tree_state: tree, step_state: state, output: loaded.tokenizer.decode(state.ids),
                tree_plot: plots.branch_tree(*tree.plot_data()),
                alternative: gr.update(choices=choices, value=choices[1][1] if len(choices) > 1 else None),
                node: gr.update(choices=nodes, value=str(tree.current))}

    def after_step(loaded, state, anatomy, tree) -> dict:
        if tree is None or state.steps_taken == 1 or tree.path_ids() != state.ids[:-1]:
            tree = BranchTree(state.ids[:state.prompt_length], state.prompt)  # a new start: a new tree
        label = labels_for(loaded.tokenizer)
        token = int(state.ids[-1])
        try:
            tree.extend(token, label(token), float(anatomy.probs[token]), _alternatives(label, anatomy.probs))
        except BranchLimitError:
            state.ids.pop()  # the tree is full: the step is not taken
            raise
        return updates(loaded, state, tree)

    def started(state, tree):
        if state is None or tree is None:
            raise ValueError("Press Step first: branches start from a drawn token.")
        return shared.load(state.model_name)

    @user_errors
    def take_instead(state, tree, rank) -> dict:
        loaded = started(state, tree)
        if rank is None:
            raise ValueError("Instead of the last token, take: choose one of the alternatives first.")
        tree.branch(tree.current, int(rank))
        return updates(loaded, state, tree)

    @user_errors
    def go_back(state, tree, index) -> dict:
        loaded = started(state, tree)
        if index is None:
            raise ValueError("Go back to token: choose a token of the tree first.")
        tree.go_to(int(index))
        back = {step_plot: plots.empty_figure(f"Back at token {int(index)}: press Step to see the distribution of "
                                              "the next token from here.")} if step_plot is not None else {}
        return updates(loaded, state, tree) | back

    outputs = [tree_state, step_state, output, tree_plot, alternative, node]
    take.click(take_instead, inputs=[step_state, tree_state, alternative], outputs=outputs, api_name="branch",
               api_visibility="undocumented")
    go.click(go_back, inputs=[step_state, tree_state, node], outputs=outputs + ([step_plot] if step_plot else []),
             api_name="go_back",
             api_visibility="undocumented")
    cleared = {tree_state: None, tree_plot: plots.empty_figure(NO_TREE), alternative: gr.update(choices=[], value=None),
               node: gr.update(choices=[], value=None)}
    for event in (reset_button.click, shared.prompt.change):
        event(lambda: cleared, outputs=[tree_state, tree_plot, alternative, node], api_visibility="private",
              queue=False)
    return Branches(tree_state, [tree_state, tree_plot, alternative, node], after_step)
