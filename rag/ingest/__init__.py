"""Notes → entries → chunks: finding and reading note files, the segmenter, the splitter."""
