"""`rnnkit serve`: an HTTP API and a local web page over trained models (the `[serve]` extra).

models.py   what is loaded, under which names, and the server's limits (ServeOptions)
batcher.py  one worker thread per model: generations of all clients decoded in one batch
app.py      the FastAPI app: /v1/generate (JSON or Server-Sent Events), /v1/score, /v1/inspect,
            /v1/models, /healthz, the page; errors as one line of JSON
server.py   uvicorn: one process or several
page/       the page itself: index.html, app.js, style.css (no build step, no CDN)
"""
