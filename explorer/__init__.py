"""explorer: everything the GPT-2 Explorer shows, built on the `gpt2` package.

From a prompt to numbers (no Gradio in any of these):

    analysis.py      `analyze`: one forward pass and what every panel needs -> an Analysis
    capture.py       one forward pass with hooks -> a Trace of every intermediate; capture_hooks by any name
    heads.py         per-head statistics and head-type labels, the induction test
    lens.py          the logit lens: what each layer would predict
    sampling.py      the anatomy of temperature / top-k / top-p on stored logits
    tokens.py        readable display strings for byte-level BPE tokens
    embeddings.py    PCA and cosine similarity of embeddings
    block.py         one block opened at one position: its LayerNorms and MLP neurons
    head_walk.py     one head end to end for one query: q·k, ÷√d, softmax, Σ w·v, z W_O
    interventions.py ablation: heads and MLPs turned off through the hook points
    attribution.py   who voted: a logit split into every head's and MLP's part; activation patching
    compare.py       two models side by side on one prompt
    stepping.py      step-by-step generation, one drawn token at a time
    branching.py     the tree of choices in step-by-step generation
    training.py      a model trained here, snapshot by snapshot

Where models live and run:

    store.py         the model store: the host's allow-list, device placement, the shipped models
    model_runs.py    every forward pass the app asks of its models, as plain functions (ZeroGPU runs them)
    budget.py        every visitor's analyses in one memory budget
    validation.py    every value a visitor sends, checked in one place per field
    routes.py        the HTTP routes the page uses (an allow-list); every other address refused
    workspace.py     the app's private folder for temporary files, removed at exit

Teaching and pages:

    panels.py        what each panel shows: figures and texts from an Analysis
    plots.py         pure Plotly figure builders (no Gradio)
    story.py         the guided story's cards as data, controls picked from the analysis
    source.py        the lines of the model's code behind each tab, with the prompt's shapes
    about.py         parameter count, weight tying, GPT-2 vs the 2017 Transformer, checkpoint names
    teaching.py      the teaching texts (assets/teaching/*.md) filled with the prompt's numbers
    model_facts.py   what a text may say about the loaded model: merges, special id, sizes, training data
    export.py        one analysis as a self-contained HTML page plus its numbers (JSON)
    model_map.py     the map of the whole model beside the story and the tabs, with the loaded model's sizes

The app (the only modules that import Gradio):

    app.py           starts the app: settings, the store, the first model, launch (root app.py runs it)
    ui.py            assembles the page: the tabs in TABS, the shared state, Analyze
    tabs/            one module per tab; tabs/parts/ holds what they are built from
"""
