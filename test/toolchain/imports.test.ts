// Guards the toolchain itself: ESM-only dependencies load under jest + SWC on Node 20.
import { parse } from 'yaml';
import * as k8s from '@kubernetes/client-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import client from 'prom-client';
import OpenAI from 'openai';

test('ESM dependencies import and work', () => {
  expect(parse('a: 1')).toEqual({ a: 1 });
  expect(typeof k8s.KubeConfig).toBe('function');
  expect(typeof Tokenizer).toBe('function');
  expect(new Template('{{ a }}').render({ a: 'x' })).toBe('x');
  expect(typeof client.Counter).toBe('function');
  expect(typeof OpenAI).toBe('function');
});
