"""How the app looks: a Gradio theme on the system's CJK fonts, and a little CSS."""

from __future__ import annotations

# System fonts only: nothing is fetched from a font service, the app stays offline.
FONT_STACK = ("PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", "sans-serif")
MONO_STACK = ("ui-monospace", "Menlo", "Consolas", "monospace")

# Chinese glyph shapes follow the page language; Gradio's page says "en" otherwise.
JS = "() => { document.documentElement.lang = 'zh-CN'; }"

CSS = """
.gradio-container {
  max-width: 1280px !important;
  margin: 0 auto !important;
  font-family: "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif;
}
.qa-header h1 { font-size: 1.6rem; font-weight: 700; margin: 0.2rem 0 0.1rem; }
.qa-header p { margin: 0; color: var(--body-text-color-subdued); line-height: 1.7; }
.qa-status {
  display: flex; flex-wrap: wrap; gap: 0.3rem 1.1rem; margin: 0;
  font-size: 0.85rem; color: var(--body-text-color-subdued);
}

#qa-chat .message-content, #qa-chat .message { line-height: 1.85; font-size: 1rem; }
#qa-chat p { margin: 0; }
.qa-placeholder { color: var(--body-text-color-subdued); font-size: 1rem; }
a.qa-cite {
  color: var(--color-accent); font-weight: 600; text-decoration: none;
  padding: 0 0.1em; white-space: nowrap;
}
a.qa-cite:hover { text-decoration: underline; }
.qa-none { color: var(--body-text-color-subdued); }
.qa-note, .qa-checking, .qa-generated { color: var(--body-text-color-subdued); font-size: 0.85em; }
.qa-unsupported { font-size: 0.85em; color: var(--body-text-color-subdued); }
.qa-unsupported del { text-decoration: line-through; }
.qa-unsupported ul { margin: 2px 0 0; padding-left: 1.4em; list-style-position: inside; }
.qa-unsupported-title { margin: 4px 0 0; }
.qa-understood { color: var(--body-text-color-subdued); font-size: 0.85em; margin: 0 0 4px; }
.qa-dropped { color: var(--body-text-color-subdued); font-size: 0.85em; margin: 0; }

.qa-panel { display: flex; flex-direction: column; gap: 0.75rem; }
.qa-panel-title {
  margin: 0; font-size: 0.85rem; font-weight: 600; letter-spacing: 0.1em;
  color: var(--body-text-color-subdued);
}
.qa-asked { margin: 0; font-weight: 600; line-height: 1.7; }
.qa-empty { margin: 0; color: var(--body-text-color-subdued); line-height: 1.8; }
.qa-source {
  border: 1px solid var(--border-color-primary); border-radius: 10px;
  padding: 0.75rem 0.9rem; background: var(--block-background-fill);
  scroll-margin-top: 1rem;
}
.qa-source:target {
  border-color: var(--color-accent); box-shadow: 0 0 0 2px var(--color-accent-soft);
}
.qa-source-head { display: flex; gap: 0.4rem; align-items: baseline; font-weight: 600; }
.qa-n { color: var(--color-accent); }
.qa-meta {
  display: flex; flex-wrap: wrap; gap: 0.15rem 0.8rem; margin: 0.2rem 0 0.4rem;
  font-size: 0.8rem; color: var(--body-text-color-subdued);
}
.qa-file { word-break: break-all; }
.qa-para { margin: 0; line-height: 1.9; text-align: justify; word-break: break-word; }
mark.qa-hit {
  background: #fde68a; color: #1f2937; padding: 0.1em 0.05em; border-radius: 3px;
  box-decoration-break: clone; -webkit-box-decoration-break: clone;
}
b.qa-kw { font-weight: 700; }
strong.qa-phrase { font-weight: 800; text-decoration: underline 2px; text-underline-offset: 3px; }
span.qa-context { background: #fef9e7; border-radius: 3px; }
details.qa-earlier {
  border-top: 1px dashed var(--border-color-primary); padding-top: 0.5rem;
}
details.qa-earlier > summary { cursor: pointer; color: var(--body-text-color-subdued); }
details.qa-earlier[open] > summary { margin-bottom: 0.5rem; }
details.qa-earlier .qa-source { margin-bottom: 0.6rem; }
.qa-passages { margin: 0; padding-left: 1.4rem; }
.qa-passage { margin-bottom: 0.8rem; }
.qa-passage .qa-para { font-size: 0.92rem; }
.qa-score { font-variant-numeric: tabular-nums; }
"""


def theme():
    """The Gradio theme: the default one on system fonts (no web fonts are downloaded)."""
    import gradio as gr

    return gr.themes.Default(
        primary_hue="blue", neutral_hue="slate", font=FONT_STACK, font_mono=MONO_STACK
    )
