"""The GPT-2 Explorer app: assembles the tabs (explorer/tabs/), the shared state and the queue settings.

Each tab's module lays out its own components and wires its own events (see tabs/__init__.py
for the pattern). This module holds what they share: the prompt and model controls, the
visitor's analysis handle, and Analyze, which runs the prompt once, keeps the analysis and builds
the open tab's panels only; another tab is built when it is opened (tabs/parts/open_tabs.py). On a
CPU the logit lens and each token's surprise are made by Analyze's follow-up, after the answer is drawn.

Memory: every visitor's analysis lives in one byte budget (explorer/budget.py); the visitor's
gr.State holds only a handle. The handle is dropped from the budget when its session ends
(`unload`, when the page is closed) or its state expires.

Public API endpoints: `analyze` (prompt -> the status and the open tab's panels, Tokens for a new
visitor) and `generate` (streams text). Opening a tab (`open_tab_<tab id>`, e.g. `open_tab_attention`), a
click on the map of the model (`open_map_part`), slider redraws and step mode are `undocumented`: callable by
the page and by scripts, not listed.
"""

from __future__ import annotations

import itertools

import gradio as gr

from gpt2.resources import ASSETS

from . import panels, validation
from .analysis import analysis_bytes
from .budget import AnalysisBudget, AnalysisHandle
from .export import HandoutShelf
from .store import ModelStore
from .tabs import (Shared, View, about, attention, attribution, block, compare, embeddings, generate, layers,
                   next_token, surprise, tokens, training, user_errors)
from .tabs.parts import model_map, story
from .tabs.parts.controls import Dropdown, Textbox, checked
from .tabs.parts.handout import build_handout
from .tabs.parts.shared import plain_errors_everywhere
from .tabs.parts.open_tabs import NOTHING_SHOWN, OpenTabs, marked
from .tabs.parts.lean_blocks import LeanBlocks
from .tabs.parts.sessions import lean_sessions, session_capacity
from .routes import OnlyPageRoutes

CSS = (ASSETS / "style.css").read_text(encoding="utf-8")
DRAW_ONCE = (ASSETS / "draw_once.js").read_text(encoding="utf-8")  # each new figure drawn once, not twice
# Analyze's follow-up leaves the page once the answer's figures are drawn (assets/draw_once.js): its work on
# the server then never shares the CPU with the drawing, where browser and app run on one machine.
AFTER_DRAWN = "(...values) => (window.explorerDrawn ? window.explorerDrawn() : Promise.resolve()).then(() => values)"
# The tabs in page order, the order data flows through the model. A tab may read controls published by
# a tab before it (Generate uses Next token's). A tab's id (gr.Tab(id=...), used by the story) is its module's name.
TABS = (tokens, embeddings, attention, block, layers, next_token, attribution, surprise, generate, training, compare,
        about)
_serials = itertools.count(1)  # each Analyze's handle gets the next (tabs/parts/open_tabs.py)
STATE_SECONDS = 1800  # an abandoned session's handle (and with it its analysis) is dropped after this
SESSIONS_BYTES = 256 * 2**20  # what Gradio may keep for all sessions together, analyses aside


def build_app(store: ModelStore, default: str | None = None, budget: AnalysisBudget | None = None,
              tabs_in_order=TABS, shelf_folder=None) -> gr.Blocks:
    """The whole page. `tabs_in_order` are the tab modules (each with `build(shared) -> Tab`), TABS by default;
    `shelf_folder` is where handouts are written (the app's workspace; a new temporary folder by default)."""
    budget = budget or AnalysisBudget(2**30)
    with LeanBlocks(title="GPT-2 Explorer", analytics_enabled=False) as app:
        gr.Markdown("# GPT-2 Explorer\nGPT-2 does one thing: it predicts the next token. Follow the story below, "
                    "or type a prompt and look inside: its tokens, embeddings, every attention head, one block "
                    "opened up, what each layer adds, and the next-token distribution.")
        analysis_state = gr.State(None, time_to_live=STATE_SECONDS,
                                  delete_callback=lambda handle: handle is not None and budget.drop(handle.key))
        with gr.Row(equal_height=True):
            first_prompt = story.cards.default_prompt(store.speaks_gpt2(default or store.default))
            prompt = checked(Textbox(label="Prompt", value=first_prompt, lines=3,
                                     max_length=validation.MAX_PROMPT_CHARS, scale=5), validation.prompt)
            with gr.Column(scale=1, min_width=200):
                model_name = Dropdown(store.choices, value=default or store.default, label="Model")
                analyze_button = gr.Button("Analyze", variant="primary")
        with gr.Accordion("Example prompts, and why to try each", open=False, elem_id="examples-box"):
            examples = story.examples_table(prompt)
        status = gr.Markdown("Loading…", label="Status", elem_id="status")
        app.status_line = status  # where an event shows its progress rather than on a figure (LeanBlocks)

        shared = Shared(store, budget, prompt, model_name, analysis_state)
        connect_handout = build_handout(shared, HandoutShelf(shelf_folder))  # take this run home: one click
        open_tab = gr.State(tabs_in_order[0].__name__.rsplit(".", 1)[-1], time_to_live=STATE_SECONDS)
        shown = gr.State(dict(NOTHING_SHOWN), time_to_live=STATE_SECONDS)
        with gr.Row(elem_id="explorer-row"):
            # The map of the model stays in view beside the story and the tabs (a bar along a phone's screen).
            with gr.Column(scale=0, min_width=230, elem_id="map-column"):
                the_map = model_map.build(shared)
            with gr.Column(scale=1, min_width=300):
                strip = story.build(shared)  # the story's cards, above the tabs
                # Tabs wrap onto a second row rather than folding into a menu: every tab stays one click away.
                with gr.Tabs(elem_id="tabs", overflow_behavior="wrap") as tab_strip:
                    tabs = {}
                    for module in tabs_in_order:
                        tab = module.build(shared)
                        shared.controls.update(tab.controls)
                        tabs[module.__name__.rsplit(".", 1)[-1]] = tab
        check_unique_inputs(tabs)
        values = {name: c for tab in tabs.values() for name, c in tab.inputs.items()}
        connect_handout(values)  # the handout is made with the head and sampling the learner set
        open_tabs = OpenTabs(shared, tabs, open_tab, shown, values)
        open_tabs.connect(tab_strip)
        for tab in tabs.values():
            if tab.wire is not None:
                tab.wire(open_tabs)
        strip.connect(tab_strip, open_tabs)
        the_map.connect(open_tabs)

        @user_errors
        def analyze(prompt, model_name, handle, story_state, tab_open, request: gr.Request, progress=gr.Progress(),
                    **values):
            """One forward pass, kept in the budget; then only the open tab's panels and the story card."""
            loaded = shared.load(model_name, progress)
            # The visitor's key is reused, so a new prompt replaces their old analysis in the budget.
            previous = handle
            key = handle.key if isinstance(handle, AnalysisHandle) else budget.new_key(request.session_hash)
            budget.drop(key)
            n_tokens = min(len(loaded.tokenizer.encode(prompt)), loaded.model.config.n_ctx)
            budget.make_room(analysis_bytes(loaded.model.config, n_tokens))
            analysis = shared.analyze(loaded.name, prompt, values["lens_positions"])
            budget.put(key, analysis)
            handle = AnalysisHandle(key, loaded.name, prompt, values["lens_positions"], next(_serials))
            result = {status: panels.status_line(loaded, analysis) + store.status_notice(loaded.name),
                      analysis_state: handle} | the_map.for_model(loaded, previous)
            if (story_state or story.START)["on"]:  # the story's card opens its own tab
                card, why = strip.for_prompt(prompt, story_state)
                result |= open_tabs.cleared(keep=story.cards.CARDS[card].tab)
                result |= strip.show_card(analysis, loaded, card, why, handle=handle, values=values)
            else:
                view = View(analysis, loaded, values)
                result |= open_tabs.cleared(keep=tab_open) | open_tabs.panels(tab_open, view) | strip.place(story_state)
                result |= {open_tab: tab_open, shown: marked(handle, None, tab_open)}
            budget.remeasure(key)  # what the views cached on the analysis (e.g. the overview tiles)
            return result

        @user_errors
        def follow_up(handle, shown_now, tab_open, **values) -> dict:
            """Once the page has drawn Analyze's answer: the open tab built again if the visitor opened another
            one while Analyze ran; then, on a CPU and if no other visitor's pass is running, each token's surprise
            and the logit lens (Shared.finish_if_idle, which stops as soon as the visitor asks for anything), so
            that Surprise and Layers open without making them."""
            result = open_tabs.catch_up(handle, shown_now, tab_open, values)
            if isinstance(handle, AnalysisHandle):
                analysis, _ = shared.analysis_of(handle)
                shared.finish_if_idle(analysis, handle.lens_positions)
                shared.remember(handle)
            return result

        # While Analyze runs, the status line only fades ("minimal"). Gradio's full progress animates a
        # spinner over every output, which kept the browser busy on the cores the forward pass needs.
        analyze_inputs = dict(inputs=[prompt, model_name, analysis_state, strip.state, open_tab], inputs_kwargs=values,
                              show_progress_on=[status], show_progress="minimal",
                              outputs=list(dict.fromkeys([status, analysis_state, open_tab, shown, the_map.html,
                                                          *open_tabs.outputs,
                                                          *strip.outputs])))
        # Analyze's follow-up: it skips the queue off ZeroGPU (what it makes takes the compute slot itself).
        follow_up_inputs = dict(inputs=[analysis_state, shown, open_tab], inputs_kwargs=values,
                                outputs=[open_tab, shown, *open_tabs.outputs], api_visibility="private",
                                queue=shared.queue_views, show_progress="hidden", js=AFTER_DRAWN)
        # The page analyses the prompt it opens with, so the story starts with numbers, not empty panels.
        gr.on([app.load, analyze_button.click, prompt.submit], analyze, api_name="analyze",
              **analyze_inputs).success(follow_up, **follow_up_inputs)
        examples.click(story.pick, inputs=[examples, strip.state], outputs=[prompt, strip.state],
                       api_visibility="private", queue=False).then(
            analyze, api_visibility="private", **analyze_inputs).success(follow_up, **follow_up_inputs)

        def forget(request: gr.Request):  # the page was closed: its analyses go now, not when the state expires
            if request.session_hash:
                budget.drop_session(request.session_hash)
        app.unload(forget)
    app.explorer_tabs, app.explorer_story, app.explorer_open_tabs = tabs, strip, open_tabs  # for tests that call the handlers directly
    app.explorer_budget, app.explorer_analysis_state, app.explorer_map = budget, analysis_state, the_map
    plain_errors_everywhere(app)  # what a visitor reads is a message, never a traceback (launch_options: show_error)
    return app


def check_unique_inputs(tabs: dict) -> None:
    """Refuse two tabs publishing an input under one name: Analyze takes them by name, and the later one
    would silently replace the earlier."""
    owners = {}
    for tab_id, tab in tabs.items():
        for name in tab.inputs:
            if name in owners:
                raise ValueError(f"tabs {owners[name]!r} and {tab_id!r} both publish the input {name!r}: rename one")
            owners[name] = tab_id


def launch_options(shelf_folder=None) -> dict:
    """Arguments for `app.launch`: what the Blocks need (Gradio 6 takes CSS and the page's script at launch),
    and what a public server needs: only the page's routes (explorer/routes.py; files only from the handout
    shelf, `shelf_folder`) and lean, bounded sessions (tabs/parts/sessions.py).

    Server-side rendering stays off: with it, Gradio puts a Node server in front that answers every
    address outside its own list with the page, so no allow-list in this process could hold. The page
    draws its figures in the browser anyway, which is where its time goes.

    Gradio's run history stays off. It would keep every public event's inputs and answer (an Analyze's
    figures, ~150 KB at 32 tokens on GPT-2 124M) in the browser's localStorage, where the next student at
    a shared computer could read them, and it rewrites that whole list (up to 100 runs) when an event
    starts, answers and ends, on the page's main thread: before the request leaves and before a figure is
    drawn.
    """
    from starlette.middleware import Middleware

    return {"css": CSS, "js": DRAW_ONCE, "theme": gr.themes.Soft(), "show_error": True, "ssr_mode": False,
            "run_history": False,  # see the docstring
            "num_workers": 0,  # Gradio's static-file workers would serve files past the allow-list
            "state_session_capacity": session_capacity(SESSIONS_BYTES),
            "app_kwargs": {"middleware": [Middleware(OnlyPageRoutes, shelf=shelf_folder)],
                           "lifespan": lean_sessions(session_capacity(SESSIONS_BYTES), STATE_SECONDS)}}
