// The official `openai` npm client against the server: completions and chat, streaming and not.
import OpenAI from 'openai';
import type { Runtime } from '../../runtime/server/runtime.js';
import { loadReference, startTestRuntime } from './helpers.js';

let runtime: Runtime;
let client: OpenAI;
const reference = loadReference('jamba-tiny');
const c = reference.cases[0]!;

beforeAll(async () => {
  runtime = await startTestRuntime({ fixture: 'jamba-tiny' });
  client = new OpenAI({ baseURL: `${runtime.url}/v1`, apiKey: 'not-needed', maxRetries: 0 });
}, 120000);
afterAll(async () => {
  await runtime?.close();
});

test('models.list names the served model', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  expect(ids).toEqual([runtime.servedModelName]);
});

test('completions, then the same streamed, give the reference tokens and the same text', async () => {
  const params = { model: runtime.servedModelName, prompt: c.prompt, max_tokens: c.max_new_tokens, temperature: 0, logprobs: 1 };
  const extra = { ignore_eos: true, return_tokens_as_token_ids: true };
  const whole = await client.completions.create({ ...params, ...extra } as OpenAI.CompletionCreateParamsNonStreaming);
  expect(whole.object).toBe('text_completion');
  expect(whole.choices[0]!.logprobs!.tokens!.map((t) => Number(t.split(':')[1]))).toEqual(c.bf16.greedy_token_ids);
  expect(whole.usage).toEqual({ prompt_tokens: c.prompt_token_ids.length, completion_tokens: c.max_new_tokens, total_tokens: c.prompt_token_ids.length + c.max_new_tokens });

  const stream = await client.completions.create({ ...params, ...extra, stream: true, stream_options: { include_usage: true } } as OpenAI.CompletionCreateParamsStreaming);
  let text = '';
  const ids: number[] = [];
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined | null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      text += ch.text;
      ids.push(...(ch.logprobs?.tokens ?? []).map((t) => Number(t.split(':')[1])));
      finish = ch.finish_reason ?? finish;
    }
  }
  expect(text).toBe(whole.choices[0]!.text);
  expect(ids).toEqual(c.bf16.greedy_token_ids);
  expect(finish).toBe('length');
  expect(usage?.completion_tokens).toBe(c.max_new_tokens);
}, 120000);

test('chat completions, then the same streamed, agree', async () => {
  const params = { model: runtime.servedModelName, messages: reference.chat.messages as OpenAI.ChatCompletionMessageParam[], max_tokens: 12, temperature: 0 };
  const whole = await client.chat.completions.create({ ...params, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  expect(whole.object).toBe('chat.completion');
  expect(whole.choices[0]!.message.role).toBe('assistant');
  expect(whole.usage!.prompt_tokens).toBe(reference.chat.token_ids.length);
  expect(whole.usage!.completion_tokens).toBe(12);

  const stream = await client.chat.completions.create({ ...params, ignore_eos: true, stream: true, stream_options: { include_usage: true } } as OpenAI.ChatCompletionCreateParamsStreaming);
  let content = '';
  const roles: string[] = [];
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined | null;
  for await (const chunk of stream) {
    expect(chunk.object).toBe('chat.completion.chunk');
    if (chunk.usage) {
      usage = chunk.usage;
      continue;
    }
    const delta = chunk.choices[0]!.delta;
    if (delta.role) roles.push(delta.role);
    content += delta.content ?? '';
    finish = chunk.choices[0]!.finish_reason ?? finish;
  }
  expect(roles).toEqual(['assistant']);
  expect(content).toBe(whole.choices[0]!.message.content);
  expect(finish).toBe('length');
  expect(usage).toEqual(whole.usage);

  // Content as text parts is the same conversation.
  const parts = reference.chat.messages.map((m) => ({ role: m.role, content: [{ type: 'text', text: m.content }] }));
  const fromParts = await client.chat.completions.create({ ...params, messages: parts, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  expect(fromParts.choices[0]!.message.content).toBe(whole.choices[0]!.message.content);
}, 120000);

test('errors come back as the client\'s typed errors', async () => {
  await expect(client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 1 })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  await expect(client.completions.create({ model: runtime.servedModelName, prompt: 'x', max_tokens: 1, logprobs: 9 })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
});
