// Builds the CustomResourceDefinition object from the schema module.
import { API_VERSION, GROUP, KIND, PLURAL, VERSION, specField, statusField } from './jambadeployment.js';

export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const CRD_FILE = `crds/${GROUP}_${PLURAL}.yaml`;

export function buildCrd(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: CRD_NAME },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: 'jambadeployment', shortNames: ['jd'], categories: ['all', 'jamba'] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: {
            status: {},
            scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
          },
          additionalPrinterColumns: [
            { name: 'Model', type: 'string', jsonPath: '.spec.model.name' },
            { name: 'Ready', type: 'string', jsonPath: '.status.readyText', description: 'ready/desired replicas' },
            { name: 'Tokens/s', type: 'number', jsonPath: '.status.tokensPerSecond' },
            { name: 'Status', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].reason", priority: 1 },
            { name: 'Download%', type: 'integer', jsonPath: '.status.model.downloadPercent', priority: 1, description: 'percent of the checkpoint downloaded' },
            { name: 'Load%', type: 'integer', jsonPath: '.status.model.loadPercent', priority: 1, description: 'weight loading of the slowest loading pod' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `${KIND} (${API_VERSION}) serves an AI21 Jamba model on GPU pods behind an OpenAI-compatible Service.`,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: specField.schema,
                status: statusField.schema,
              },
            },
          },
        },
      ],
    },
  };
}
