import { groupBySizing, memoryFitRule } from './memory-fit-rule.js';
import { KNOWN_MODELS } from './sizing.js';

describe('memory-fit CEL rule generated from sizing.ts', () => {
  test('groups every known model once, Mini and Large apart', () => {
    const groups = groupBySizing();
    expect(groups).toHaveLength(2);
    expect(groups.flatMap((g) => g.names).sort()).toEqual(Object.keys(KNOWN_MODELS).sort());
  });

  test('embeds each group\'s figures and lets unknown models through', () => {
    const { rule, messageExpression } = memoryFitRule();
    for (const g of groupBySizing()) {
      const s = g.sizing;
      expect(rule).toContain(`(self.quantization == 'None' ? ${s.weightsMiB.None} : ${s.weightsMiB.ExpertsInt8}) + ${s.kvKiBPerToken} * self.maxContextLength / 1024 + ${s.mambaStateMiB}`);
      expect(messageExpression).toContain(`'${s.weightsGB.None}' : '${s.weightsGB.ExpertsInt8}'`);
      for (const n of g.names) expect(rule).toContain(`'${n}'`);
    }
    expect(rule.endsWith(': true))')).toBe(true);
  });
});
