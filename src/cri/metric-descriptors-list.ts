import type { ListMetricDescriptorsRequest, ListMetricDescriptorsResponse } from '../gen/runtime/v1/api';
import { METRIC_DESCRIPTORS } from '../stats/cadvisor-metrics';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** ListMetricDescriptors: the fixed set of cAdvisor-compatible families that ListPodSandboxMetrics reports. */
export function listMetricDescriptorsHandler(_deps: CriDeps): UnaryHandler<ListMetricDescriptorsRequest, ListMetricDescriptorsResponse> {
  return async () => ({ descriptors: [...METRIC_DESCRIPTORS] });
}
