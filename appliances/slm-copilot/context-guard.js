// SLM-Copilot context guard (njs, loaded by the front door's site for chat completions).
//
// LocalAI v4.9.0 answers a prompt longer than the context with a 200 stream whose last
// event is an error (core/http/endpoints/openai/chat.go). Cline compacts its history only
// on a 400 whose message names tokens or the context length
// (cline/cline v3.89.2 apps/vscode/src/core/context/context-management/context-error-handling.ts),
// so it would retry the same prompt forever. The guard counts the prompt with the engine's
// own tokenizer before the request reaches the engine and refuses what cannot fit with that
// 400; everything else goes on to the engine untouched, streamed by proxy_pass. When it
// cannot count (an unreadable body, a tokenizer error) it passes the request on: the
// engine then answers as it would without the guard.

// Chat-template tokens around each message and the generation prompt: an allowance, so
// that a prompt the guard lets through a little under the context is not over it once
// templated.
const perMessage = 8;
const perRequest = 16;

// promptText is every text of the request that the chat template puts in the prompt.
function promptText(req) {
    const parts = [];
    const add = (v) => {
        if (typeof v === 'string') {
            parts.push(v);
        } else if (Array.isArray(v)) {
            v.forEach((p) => {
                if (p && typeof p.text === 'string') {
                    parts.push(p.text);
                }
            });
        }
    };
    req.messages.forEach((m) => {
        add(m.content);
        add(m.name);
        if (Array.isArray(m.tool_calls)) {
            m.tool_calls.forEach((c) => {
                if (c && c.function) {
                    add(c.function.name);
                    add(c.function.arguments);
                }
            });
        }
    });
    if (req.tools) {
        parts.push(JSON.stringify(req.tools));
    }
    return parts.join('\n');
}

// count asks the engine's tokenizer (LocalAI's /v1/tokenize, llama-server's /tokenize: both
// take {"content"} and answer {"tokens": [...]}) how many tokens the prompt holds.
async function count(r, req) {
    const reply = await ngx.fetch(r.variables.slm_copilot_tokenize_url, {
        method: 'POST',
        headers: {'Content-Type': 'application/json', 'Authorization': r.variables.slm_copilot_engine_auth},
        body: JSON.stringify({model: req.model || r.variables.slm_copilot_model, content: promptText(req)}),
    });
    if (reply.status !== 200) {
        throw new Error(`the engine's tokenizer answered ${reply.status}`);
    }
    const tokens = (await reply.json()).tokens;
    if (!Array.isArray(tokens)) {
        throw new Error("the engine's tokenizer answered without tokens");
    }
    return tokens.length + perMessage * req.messages.length + perRequest;
}

// refuse answers as llama-server does for the same case (code 400 and a message naming
// the context length and tokens, which both of Cline's OpenAI checks recognise).
function refuse(r, prompt, context) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(400, JSON.stringify({error: {
        code: 400,
        type: 'exceed_context_size_error',
        message: `the request exceeds the available context length: about ${prompt} prompt tokens, over the ${context}-token context of this instance; shorten the conversation`,
        n_prompt_tokens: prompt,
        n_ctx: context,
    }}) + '\n');
}

async function chat(r) {
    let req;
    try {
        req = JSON.parse(r.requestText);
    } catch (e) {
        r.internalRedirect('@slm_copilot_engine'); // the engine says what is wrong with it
        return;
    }
    if (!req || !Array.isArray(req.messages)) {
        r.internalRedirect('@slm_copilot_engine');
        return;
    }
    const context = Number(r.variables.slm_copilot_context_size);
    let prompt;
    try {
        prompt = await count(r, req);
    } catch (e) {
        r.warn(`slm-copilot context guard: cannot count the prompt (${e.message}); passing the request on`);
        r.internalRedirect('@slm_copilot_engine');
        return;
    }
    if (prompt >= context) {
        refuse(r, prompt, context);
        return;
    }
    r.internalRedirect('@slm_copilot_engine');
}

export default {chat};
