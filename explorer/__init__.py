"""explorer: everything the GPT-2 Explorer shows, built on the `gpt2` package.

    capture.py   one forward pass with hooks -> a Trace of every intermediate
    tokens.py    readable display strings for byte-level BPE tokens
    sampling.py  the anatomy of temperature / top-k / top-p on stored logits
    lens.py      the logit lens: what each layer would predict
    heads.py     per-head statistics and head-type labels
    head_walk.py one head end to end for one query: q·k, ÷√d, softmax, Σ w·v, z W_O
    block.py     one block opened at one position: its LayerNorms and MLP neurons
    story.py     the guided story's cards as data, controls picked from the analysis
    source.py    the lines of the model's code behind each tab, with the prompt's shapes
    about.py     parameter count, weight tying, GPT-2 vs the 2017 Transformer, checkpoint names
    teaching.py  the teaching texts (assets/teaching/*.md) filled with the prompt's numbers
    interventions.py  ablation: heads and MLPs turned off through the hook points
    compare.py   two models side by side on one prompt
    branching.py the tree of choices in step-by-step generation
    export.py    one analysis as a self-contained HTML page plus its numbers (JSON)
    plots.py     pure Plotly figure builders (no Gradio)
    ui.py        the Gradio Blocks app (the only module that imports Gradio)
"""
