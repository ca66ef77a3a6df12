"""The lines of the model's code that compute what each tab shows, with this prompt's shapes.

The snippets are cut from the running source with `inspect`, never copied, so they
cannot drift from the code. Each tab names the objects to read and, per object,
patterns that pick statements by content (`softmax`, `ln_1(`, ...): rewriting a
method keeps its snippet as long as the statement is still there. A pattern marked
required that matches nothing is a bug, and the tests ask for every tab's snippet.

Shape comments such as `# (B, T, d_model)` get this prompt's numbers appended,
`# (B, T, d_model) = (1, 7, 768)`.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
import textwrap
from dataclasses import dataclass

from gpt2 import GPTConfig


@dataclass(frozen=True)
class Pick:
    """Statements of one object (`module:qualname`) whose source matches a pattern."""

    target: str
    required: tuple[str, ...]  # each must match at least one statement
    optional: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()  # methods left out (the speed-ups live in gpt2/fast.py, never shown here)


SNIPPETS: dict[str, tuple[Pick, ...]] = {
    "tokens": (Pick("gpt2.model:GPT2.forward", (r"ids\.shape", r"\bwte\(")),),
    "embeddings": (Pick("gpt2.model:GPT2.forward", (r"\barange\(", r"\bwte\(", r"\bwpe\(", r"tok \+ pos")),),
    "attention": (Pick("gpt2.model:CausalSelfAttention", (r"\bc_attn\(", r"\bsoftmax\(", r"\bc_proj\("),
                       (r"^\s*q, k, v =", r"transpose\(-2, ?-1\)", r"\bscale\b", r"causal_bias\(|masked_fill",
                        r"@ ?v\b"),
                       skip=("__init__",)),),
    "block": (Pick("gpt2.model:Block.forward", (r"\bln_1\(", r"\bln_2\(")),
              Pick("gpt2.model:MLP.forward", (r"\bc_fc\(", r"gelu", r"\bc_proj\("))),
    "layers": (Pick("gpt2.model:Block.forward", (r"x \+ ",)),
               Pick("gpt2.model:GPT2.forward", (r"\bblock\(",), (r"^\s*for\b.*\bh\b",))),
    "next_token": (Pick("gpt2.model:GPT2.forward", (r"\bln_f\(", r"\bunembed\(")),
                   Pick("gpt2.model:GPT2.unembed", (r"wte\.weight",))),
    "surprise": (Pick("explorer.capture:token_surprise", (r"\bunembed\(", r"logsumexp"), (r"\.gather\(",)),),
    "generate": (Pick("gpt2.generate:", (r"sample_token\(", r"\.append\("), (r"_forward_last\(", r"\bkeep\b")),
                 Pick("gpt2.model:KVCache.append", (r"self\.keys\[layer\]",))),
}
TABS = tuple(SNIPPETS)


def _resolve(target: str):
    module_name, qualname = target.split(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):  # an empty qualname means the whole module
        obj = getattr(obj, part)
    return obj


def _statements(tree: ast.AST, skip: tuple[str, ...] = ()):
    """Every simple statement, and the header line of every compound one (for, if, with, ...).

    Docstrings are left out, and so are the methods named in `skip`.
    """
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in skip:
            skipped.update(range(node.lineno, node.end_lineno + 1))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            continue
        if getattr(node, "lineno", 0) in skipped:
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        if isinstance(node, (ast.For, ast.While, ast.If, ast.With)):
            yield node.lineno, node.lineno
        elif isinstance(node, ast.stmt):
            yield node.lineno, node.end_lineno


def _code_only(line: str) -> str:
    return line.split("#", 1)[0]


@dataclass
class Snippet:
    target: str
    first_line: int  # line number of the object's first line in its file
    file: str
    lines: list[tuple[int, str]]  # (line number in the file, text)
    missing: list[str]  # required patterns that matched nothing


@functools.lru_cache(maxsize=None)  # the running source does not change: read and parse each object once
def pick_lines(pick: Pick) -> Snippet:
    obj = inspect.unwrap(_resolve(pick.target))  # a decorated function's own source file, not its decorator's
    source_lines, first = inspect.getsourcelines(obj)
    first = max(first, 1)  # a module's source starts at line 1 (inspect says 0)
    source = textwrap.dedent("".join(source_lines))
    tree = ast.parse(source)
    picked: set[int] = set()
    missing = []
    for pattern, required in [(p, True) for p in pick.required] + [(p, False) for p in pick.optional]:
        found = False
        for start, end in _statements(tree, pick.skip):
            text = "\n".join(_code_only(source_lines[i - 1]) for i in range(start, end + 1))
            if re.search(pattern, text, flags=re.MULTILINE):
                picked.update(range(start, end + 1))
                found = True
        if required and not found:
            missing.append(pattern)
    file = inspect.getsourcefile(obj) or "?"
    lines = [(first + i - 1, source_lines[i - 1].rstrip("\n")) for i in sorted(picked)]
    return Snippet(pick.target, first, file, lines, missing)


def shape_values(config: GPTConfig, n_tokens: int, batch: int = 1) -> dict[str, int]:
    """What the shape comments' symbols stand for in this analysis (one sequence, no cache)."""
    C = config.n_embd
    return {"B": batch, "T": n_tokens, "T_q": n_tokens, "T_k": n_tokens, "T_past": 0, "C": C, "d_model": C,
            "n_embd": C, "n_head": config.n_head, "d_head": config.d_head, "n_vocab": config.n_vocab,
            "d_mlp": config.mlp_ratio * C, "n_layer": config.n_layer, "q_len": n_tokens, "k_len": n_tokens,
            "T_max": config.n_ctx, "T_new": n_tokens}


_SHAPE = re.compile(r"\(([A-Za-z0-9_ +*-]*,[A-Za-z0-9_ +*,-]*)\)")  # at least one comma: (T,) but not sqrt(d)
_TERM = re.compile(r"^[A-Za-z_]\w*|^\d+")


def _evaluate(expression: str, values: dict[str, int]) -> int | None:
    """A shape entry such as `T_past + T` or `3C` as a number, or None if it names an unknown symbol."""
    expression = re.sub(r"(\d)([A-Za-z_])", r"\1*\2", expression.replace(" ", ""))
    names = re.findall(r"[A-Za-z_]\w*", expression)
    if not expression or any(name not in values for name in names) or re.search(r"[^\w+*-]", expression):
        return None
    return int(eval(expression, {"__builtins__": {}}, dict(values)))  # only names, digits, + - *: checked above


def annotate_shapes(line: str, values: dict[str, int]) -> str:
    """`# (B, T, d_model)` -> `# (B, T, d_model) = (1, 7, 768)`; lines without a shape comment are unchanged."""
    if "#" not in line:
        return line
    code, comment = line.split("#", 1)

    def fill(match: re.Match) -> str:
        entries = [e for e in match.group(1).split(",") if e.strip()]
        numbers = [_evaluate(e, values) for e in entries]
        if not entries or any(n is None for n in numbers):
            return match.group(0)
        tail = "," if len(numbers) == 1 else ""
        return f"{match.group(0)} = ({', '.join(map(str, numbers))}{tail})"

    return code + "#" + _SHAPE.sub(fill, comment)


def snippets(tab: str) -> list[Snippet]:
    if tab not in SNIPPETS:
        raise ValueError(f"no code view for {tab!r}; tabs with one: {', '.join(TABS)}")
    return [pick_lines(pick) for pick in SNIPPETS[tab]]


def code_markdown(tab: str, config: GPTConfig, n_tokens: int) -> str:
    """The tab's lines of code as markdown code blocks, shape comments filled in with this prompt's numbers."""
    values = shape_values(config, n_tokens)
    parts = []
    for snippet in snippets(tab):
        module = snippet.target.split(":")[0].replace(".", "/") + ".py"
        block, previous = [], None
        for number, text in snippet.lines:
            if previous is not None and number > previous + 1:
                text_indent = len(text) - len(text.lstrip())
                block.append(" " * text_indent + "...")
            block.append(annotate_shapes(text, values))
            previous = number
        code = textwrap.dedent("\n".join(block))
        name = snippet.target.split(":")[1]
        where = f"`{name}` in `{module}`" if name else f"`{module}`"
        parts.append(f"{where}, from line {snippet.lines[0][0] if snippet.lines else snippet.first_line}:"
                     f"\n\n```python\n{code}\n```")
    legend = ", ".join(f"{k} = {values[k]:,}" for k in ("B", "T", "d_model", "n_head", "d_head", "d_mlp", "n_vocab"))
    parts.append(f"Shapes for this prompt: {legend} (C is d_model).")
    return "\n\n".join(parts)
