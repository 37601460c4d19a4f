"""Test and benchmark helpers: a fake OpenAI-compatible upstream server (`fake_openai`)."""
