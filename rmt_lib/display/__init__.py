"""What a reader sees besides figures: Markdown tables, HTML views of samples, segment scrubbers."""
