"""The Higgs Audio v2 chat template and the special tokens it and the processor refer to.

Every model folder's text tokenizer carries them; the tiny test model is built with them, and an
original-layout checkpoint converted without its own ``chat_template.jinja`` gets this template.
"""

# Special tokens of the Higgs Audio v2 (Llama-3 based) text tokenizer that the chat template, the
# processor and the model config refer to. The delay token is Llama-3's reserved token 6.
BOS, PAD_EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
SPECIAL_TOKENS = (
    BOS,
    PAD_EOS,
    "<|start_header_id|>",
    "<|end_header_id|>",
    EOT,
    "<|scene_desc_start|>",
    "<|scene_desc_end|>",
    "<|audio_bos|>",  # audio *input* (understanding) markers: unused by generation, kept for parity
    "<|AUDIO|>",
    "<|audio_out_bos|>",  # starts an audio segment the model reads or writes
    "<|AUDIO_OUT|>",  # one placeholder per audio frame
    "<|reserved_special_token_6|>",  # delay-pattern tail placeholder (num_codebooks - 1 per segment)
    "<|audio_eos|>",  # ends an audio segment
)

# Renders exactly like the template shipped with transformers' Higgs Audio v2 conversion: a
# required system turn, an optional "scene" turn, user turns as text and assistant turns as audio.
CHAT_TEMPLATE = """\
{#- Higgs Audio v2 chat format: Llama-3 headers; assistant turns are audio. -#}
{{- bos_token -}}
{%- if not messages or messages[0]['role'] != 'system' -%}
    {{- raise_exception('A system message is required but not provided!') -}}
{%- endif -%}
{%- set first = messages[0]['content'] -%}
{%- if first is string -%}
    {%- set system_text = first | trim -%}
{%- elif first is iterable and first[0]['type'] == 'text' -%}
    {%- set system_text = first[0]['text'] | trim -%}
{%- else -%}
    {{- raise_exception('System message content must be a string or contain text type!') -}}
{%- endif -%}
{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system_text -}}
{%- set rest = messages[1:] -%}
{%- if rest and rest[0]['role'] == 'scene' -%}
    {{- '\\n\\n<|scene_desc_start|>\\n' -}}
    {%- if rest[0]['content'] is string -%}
        {{- rest[0]['content'] | trim -}}
    {%- else -%}
        {%- for item in rest[0]['content'] -%}
            {%- if item['type'] == 'text' -%}
                {{- item['text'] | trim -}}
                {%- if loop.first and not loop.last -%}
                    {{- '\\n\\n' -}}
                {%- elif not loop.first and not loop.last and loop.nextitem['type'] != 'audio' -%}
                    {{- '\\n' -}}
                {%- endif -%}
            {%- elif item['type'] == 'audio' -%}
                {{- ' <|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>' -}}
                {%- if not loop.last -%}
                    {{- '\\n' -}}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '\\n<|scene_desc_end|>' -}}
    {%- set rest = rest[1:] -%}
{%- endif -%}
{{- '<|eot_id|>' -}}
{%- for message in rest -%}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' -}}
    {%- if message['role'] == 'assistant' -%}
        {%- if message['content'] is string or message['content'][0]['type'] != 'audio' -%}
            {{- raise_exception('Assistant messages must contain audio content only!') -}}
        {%- endif -%}
        {{- '<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>' -}}
    {%- elif message['content'] is string -%}
        {{- message['content'] | trim -}}
    {%- else -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'text' -%}
                {{- item['text'] | trim -}}
            {%- elif item['type'] == 'audio' -%}
                {{- raise_exception('Only assistant and scene messages may contain audio!') -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n<|audio_out_bos|>' -}}
{%- endif -%}
"""
