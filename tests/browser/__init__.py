"""Browser tests: the web UI driven by headless Chromium (Playwright) against a live server and a real fleet."""
