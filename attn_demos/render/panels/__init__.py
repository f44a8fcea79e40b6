"""What each demo tab shows, computed without Gradio: task results turned into pictures, HTML,
badges and export files. The apps only wire these functions to components."""
