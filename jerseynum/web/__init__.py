"""The race-photo site (`jerseynum serve`): runners search their photos by bib, name or selfie, photographers
review and correct the uncertain reads, programs use the JSON API.

`site.py` knows the photos (no HTTP), `app.py` is the FastAPI app over it with the pages in `templates/` and
`static/`, `guard.py` what every response passes through, `server.py` serves it with uvicorn."""
