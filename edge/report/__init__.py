"""The day's report from the results log: the women and their tables (`day`), the page (`page`), the writer (`write`)."""
