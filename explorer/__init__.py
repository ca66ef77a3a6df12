"""explorer: everything the GPT-2 Explorer shows, built on the `gpt2` package.

    capture.py   one forward pass with hooks -> a Trace of every intermediate
    tokens.py    readable display strings for byte-level BPE tokens
    sampling.py  the anatomy of temperature / top-k / top-p on stored logits
    lens.py      the logit lens: what each layer would predict
    heads.py     per-head statistics and head-type labels
    interventions.py  ablation: heads and MLPs turned off through the hook points
    compare.py   two models side by side on one prompt
    branching.py the tree of choices in step-by-step generation
    export.py    one analysis as a self-contained HTML page plus its numbers (JSON)
    plots.py     pure Plotly figure builders (no Gradio)
    ui.py        the Gradio Blocks app (the only module that imports Gradio)
"""
