"""What the tabs share and are built from, apart from the tabs themselves (explorer/tabs/ holds one module per tab).

    shared.py          what every tab receives (Shared: the store, the budget, the GPU gateway), View, Tab
    controls.py        controls that check what a visitor sends (validation.py), explanations, "analyze first"
    code_view.py       a tab's "The code" box: the lines of gpt2/model.py behind it
    story.py           the guided story's strip above the tabs, and the example prompts
    ablation.py        turning heads off, inside the Attention tab
    head_walk_view.py  one head end to end, inside the Attention tab
    branches.py        the tree of branches of step-by-step generation, inside the Generate tab
    handout.py         the one-click handout: this run as a self-contained page
"""
