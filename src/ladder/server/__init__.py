"""`ladder serve`: an OpenAI-compatible gateway that runs fitted policies on model servers.

A thin FastAPI app (`app`), the OpenAI wire format (`protocol`), the serving logic
(`serving`), the database (`store`) and the shared online learner (`learner`).
"""
