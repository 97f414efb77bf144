"""Report code and templates; generated reports go to out/ (ignored by git)."""
