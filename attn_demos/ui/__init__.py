"""The Gradio app: one module per tab (its layout, its run/redraw/export handlers and the names of
the outputs they fill), the shared non-Gradio pieces (common) and Gradio glue (wiring) written once.
Handlers are plain functions that return dicts keyed by output name: testable without a browser."""
