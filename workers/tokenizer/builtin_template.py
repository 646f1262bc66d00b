"""The chat template of the built-in presets (byte-level tokenizer), in jinja like a checkpoint's.

Plain chats render as `<|role|>\\ncontent\\n` per message, then `<|assistant|>\\n`. Tools
follow Hermes / Qwen2: the signatures in a <tools> block of the system turn, earlier calls
as <tool_call>{"name": ..., "arguments": ...}</tool_call>, and results in <tool_response>.
A model trained on this format answers with <tool_call> blocks, which the gateway parses.
"""

BUILTIN_CHAT_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|system|>\\n' }}"
    "{%- if messages and messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- 'You may call one or more functions to assist with the user query.\\n\\n'"
    " + 'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments '"
    " + 'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n'"
    " + '{\"name\": <function-name>, \"arguments\": <args-json-object>}\\n</tool_call>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (tools and loop.first and message.role == 'system') %}"
    "{{- '<|' + message.role + '|>\\n' }}"
    "{%- if message.role == 'tool' %}"
    "{{- '<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- else %}"
    "{{- message.content or '' }}"
    "{%- for call in message.tool_calls or [] %}"
    "{{- ('\\n' if (message.content or not loop.first) else '') + '<tool_call>\\n'"
    " + ({'name': call.function.name, 'arguments': call.function.arguments} | tojson) + '\\n</tool_call>' }}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- endif %}"
)
