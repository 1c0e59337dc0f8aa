"""Gradio pieces of the app's photo tabs: the photo upload with its face picker (photo_input) and the
results panel with its before/after comparison (result_panel). The logic behind them is in facegen."""
