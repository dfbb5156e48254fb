// An independent client: the official OpenAI Node SDK, configured as a user would
// configure it against the appliance (base URL, the password as API key, the appliance's
// certificate trusted through NODE_EXTRA_CA_CERTS).
'use strict';
const OpenAI = require(process.env.OPENAI_NODE_MODULES + '/openai');

async function main() {
  const model = process.env.SLM_COPILOT_MODEL;
  const client = new OpenAI({
    baseURL: process.env.SLM_COPILOT_ENDPOINT + '/v1',
    apiKey: process.env.SLM_COPILOT_PASSWORD,
    maxRetries: 0,
  });
  const ids = (await client.models.list()).data.map((m) => m.id);
  const messages = [{ role: 'user', content: 'Write a function.' }];
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 8, stream: true, stream_options: { include_usage: true },
  });
  let chunks = 0;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0 && chunk.choices[0].delta.content) chunks++;
  }
  const reply = await client.chat.completions.create({ model, messages, max_tokens: 4 });
  console.log(JSON.stringify({ ids, chunks, content: reply.choices[0].message.content.length }));
}

main().catch((err) => {
  console.error(`openai-node: ${err.status || ''} ${err.message}`);
  process.exit(1);
});
