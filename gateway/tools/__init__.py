"""Tool calling at the gateway: what the request offers (plan.py), the grammar that forces a
call (grammar.py), and the model's tool-call text parsed into OpenAI tool_calls (parser.py)."""
