package conformance

import "sigs.k8s.io/network-policy-api/apis/v1beta1"

// The Baseline tier tests of conformance/tests
// (baseline-admin-network-policy-*.go), written as in admin.go.

func baselineScenarios() []Scenario {
	return []Scenario{
		baselineEgressNamedPort(), baselineEgressNodePeers(), baselineIngressNamedPort(),
		baselineEgressInlineCIDRPeers(), baselineEgressSCTP(), baselineEgressTCP(), baselineEgressUDP(),
		baselineGress(), baselineIngressSCTP(), baselineIngressTCP(), baselineIngressUDP(),
		baselinePodSelector(), baselinePortRange(), baselineSamePriority(),
	}
}

func baselineEgressNamedPort() Scenario {
	return Scenario{
		Name:      "CNPBaselineTierEgressNamedPort",
		File:      "tests/baseline-admin-network-policy-experimental-egress-rules.go",
		Features:  []string{FeatureClusterNetworkPolicy, FeatureNamedPorts},
		Manifests: []string{"base/baseline_tier/standard-egress-udp-rules.yaml"},
		Subtests: []Subtest{
			{Name: "Should support an 'allow-egress' policy for named port", Steps: []Step{
				// dnsPortRule := mutate.Spec.Egress[3]; dnsPortRule.Protocols = [{DestinationNamedPort: "dns"}]
				after(change(SetRuleNamedPort{Line: 59, Policy: "default", Gress: Egress, Index: 3, Port: "dns"}),
					poke(63, cedric0, "udp", harry1, 53, true),
					poke(67, cedric1, "udp", harry1, 5353, false),
				),
			}},
		},
	}
}

func baselineEgressNodePeers() Scenario {
	return Scenario{
		Name:      "CNPBaselineTierEgressNodePeers",
		File:      "tests/baseline-admin-network-policy-experimental-egress-rules.go",
		Features:  []string{FeatureClusterNetworkPolicy, FeatureEgressNodePeers},
		Manifests: []string{"base/baseline_tier/experimental-egress-selector-rules.yaml"},
		Subtests: []Subtest{
			{Name: "Should support an 'allow-egress' rule policy for egress-node-peer", Steps: []Step{probes(
				poke(88, harry0, "tcp", centaur1, HostNetworkPort(0), true),
				poke(90, harry1, "tcp", centaur1, HostNetworkPort(1), true),
			)}},
			{Name: "Should support a 'deny-egress' rule policy for egress-node-peer", Steps: []Step{probes(
				poke(97, harry1, "udp", centaur1, HostNetworkPort(4), false),
				poke(99, harry1, "sctp", centaur1, HostNetworkPort(6), false),
			)}},
		},
	}
}

func baselineIngressNamedPort() Scenario {
	return Scenario{
		Name:      "CNPBaselineTierIngressNamedPort",
		File:      "tests/baseline-admin-network-policy-experimental-ingress-rules.go",
		Features:  []string{FeatureClusterNetworkPolicy, FeatureNamedPorts},
		Manifests: []string{"base/baseline_tier/standard-ingress-tcp-rules.yaml"},
		Subtests: []Subtest{
			{Name: "Should support an 'allow-ingress' policy for named port", Steps: []Step{
				// namedPortRule := mutate.Spec.Ingress[3]; namedPortRule.Protocols = [{DestinationNamedPort: "web"}]
				after(change(SetRuleNamedPort{Line: 58, Policy: "default", Gress: Ingress, Index: 3, Port: "web"}),
					poke(62, cedric0, "tcp", harry1, 80, true),
					poke(66, cedric1, "tcp", harry1, 8080, false),
				),
			}},
		},
	}
}

func baselineEgressInlineCIDRPeers() Scenario {
	features, manifests := standard("base/baseline_tier/standard-egress-inline-cidr-rules.yaml")
	return Scenario{
		Name:      "CNPBaselineTierEgressInlineCIDRPeers",
		File:      "tests/baseline-admin-network-policy-standard-egress-inline-cidr-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support a 'deny-egress' rule policy for egress-cidr-peer", Steps: []Step{
				probes(
					poke(49, harry1, "tcp", luna0, 80, false),
					poke(51, harry1, "udp", luna0, 53, false),
					poke(53, harry1, "sctp", luna0, 9003, false),
					poke(59, harry1, "tcp", cedric0, 80, false),
					poke(61, harry1, "udp", cedric0, 53, false),
					poke(63, harry1, "sctp", cedric0, 9003, false),
					poke(69, harry1, "tcp", draco0, 80, true),
					poke(71, harry1, "udp", draco0, 53, true),
					poke(73, harry1, "sctp", draco0, 9003, true),
				),
				// mutateNamespace.SetLabels({"conformance-house": "denied-namespace-label"})
				after(change(SetNamespaceLabels{Line: 80, Namespace: slytherin, Labels: map[string]string{"conformance-house": "denied-namespace-label"}}),
					poke(83, harry1, "tcp", draco0, 80, false),
					poke(85, harry1, "udp", draco0, 53, false),
					poke(87, harry1, "sctp", draco0, 9003, false),
				),
				// mutateNamespace.SetLabels({"conformance-house": "slytherin"})
				after(change(SetNamespaceLabels{Line: 94, Namespace: slytherin, Labels: map[string]string{"conformance-house": "slytherin"}}),
					poke(97, harry1, "tcp", draco0, 80, true),
					poke(99, harry1, "udp", draco0, 53, true),
					poke(101, harry1, "sctp", draco0, 9003, true),
				),
			}},
			{Name: "Should support an 'allow-egress' rule policy for egress-cidr-peer", Steps: []Step{
				// mutate.Spec.Egress = append([{Name: "allow-egress-to-specific-podIPs", Action: "Accept",
				//   To: [{Networks: [luna-lovegood-0 IP+mask, cedric-diggory-0 IP+mask]}]}], mutate.Spec.Egress...)
				after(change(PrependPodNetworksRule{Line: 139, Policy: "default", Name: "allow-egress-to-specific-podIPs",
					Action: v1beta1.ClusterNetworkPolicyRuleActionAccept, Pods: []PodRef{luna0, cedric0}}),
					poke(144, harry1, "tcp", luna0, 80, true),
					poke(146, harry1, "udp", luna0, 53, true),
					poke(148, harry1, "sctp", luna0, 9003, true),
					poke(150, harry1, "tcp", cedric0, 80, true),
					poke(152, harry1, "udp", cedric0, 53, true),
					poke(154, harry1, "sctp", cedric0, 9003, true),
					poke(164, harry1, "tcp", luna1, 80, false),
					poke(166, harry1, "udp", luna1, 53, false),
					poke(168, harry1, "sctp", luna1, 9003, false),
					poke(170, harry1, "tcp", cedric1, 80, false),
					poke(172, harry1, "udp", cedric1, 53, false),
					poke(174, harry1, "sctp", cedric1, 9003, false),
				),
			}},
		},
	}
}

func baselineEgressSCTP() Scenario {
	features, manifests := standard("base/baseline_tier/standard-egress-sctp-rules.yaml")
	return Scenario{
		Name:      "CNPBaselineTierEgressSCTP",
		File:      "tests/baseline-admin-network-policy-standard-egress-sctp-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected", Steps: []Step{probes(
				poke(48, luna0, "sctp", harry0, 9003, true),
				poke(51, luna1, "sctp", harry0, 9005, true),
			)}},
			{Name: "Should support an 'allow-egress' policy for SCTP protocol at the specified port", Steps: []Step{probes(
				poke(61, luna0, "sctp", cedric1, 9003, true),
				poke(65, luna1, "sctp", cedric1, 9005, false),
			)}},
			{Name: "Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 79, Policy: "default", Gress: Egress, I: 0, J: 1}),
					poke(83, luna0, "sctp", harry1, 9003, false),
					poke(86, luna1, "sctp", harry1, 9005, false),
				),
			}},
			{Name: "Should support a 'deny-egress' policy for SCTP protocol at the specified port", Steps: []Step{probes(
				poke(96, luna0, "sctp", draco0, 9003, false),
				poke(100, luna1, "sctp", draco0, 9005, true),
			)}},
		},
	}
}

func baselineEgressTCP() Scenario {
	features, manifests := standard("base/baseline_tier/standard-egress-tcp-rules.yaml")
	return Scenario{
		Name:      "CNPBaselineTierEgressTCP",
		File:      "tests/baseline-admin-network-policy-standard-egress-tcp-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected", Steps: []Step{probes(
				poke(48, harry0, "tcp", luna0, 80, true),
				poke(50, harry1, "tcp", luna0, 8080, true),
			)}},
			{Name: "Should support an 'allow-egress' policy for TCP protocol at the specified port", Steps: []Step{probes(
				poke(60, harry0, "tcp", cedric1, 8080, true),
				poke(64, harry1, "tcp", cedric1, 80, false),
			)}},
			{Name: "Should not affect ingress traffic when only egress rules are specified", Steps: []Step{probes(
				poke(78, luna0, "tcp", harry0, 80, true),
				poke(85, draco0, "tcp", harry1, 80, true),
			)}},
			{Name: "Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 99, Policy: "default", Gress: Egress, I: 0, J: 1}),
					poke(103, harry0, "tcp", luna1, 80, false),
					poke(106, harry1, "tcp", luna1, 8080, false),
				),
			}},
			{Name: "Should support a 'deny-egress' policy for TCP protocol at the specified port", Steps: []Step{probes(
				poke(116, harry0, "tcp", draco0, 80, false),
				poke(120, harry1, "tcp", draco0, 8080, true),
			)}},
		},
	}
}

func baselineEgressUDP() Scenario {
	features, manifests := standard("base/baseline_tier/standard-egress-udp-rules.yaml")
	return Scenario{
		Name:      "CNPBaselineTierEgressUDP",
		File:      "tests/baseline-admin-network-policy-standard-egress-udp-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected", Steps: []Step{probes(
				poke(48, cedric0, "udp", luna0, 53, true),
				poke(51, cedric1, "udp", luna0, 5353, true),
			)}},
			{Name: "Should support an 'allow-egress' policy for UDP protocol at the specified port", Steps: []Step{probes(
				poke(61, cedric0, "udp", harry1, 53, true),
				poke(65, cedric1, "udp", harry1, 5353, false),
			)}},
			{Name: "Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 79, Policy: "default", Gress: Egress, I: 0, J: 1}),
					poke(83, cedric0, "udp", luna1, 53, false),
					poke(86, cedric1, "udp", luna1, 5353, false),
				),
			}},
			{Name: "Should support a 'deny-egress' policy for UDP protocol at the specified port", Steps: []Step{probes(
				poke(96, cedric0, "udp", draco0, 5353, false),
				poke(100, cedric1, "udp", draco0, 53, true),
			)}},
		},
	}
}

func baselineGress() Scenario {
	features, manifests := standard("base/baseline_tier/standard-gress-rules-combined.yaml")
	return Scenario{
		Name:      "CNPBaselineTierGress",
		File:      "tests/baseline-admin-network-policy-standard-gress-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support an 'allow-gress' policy across different protocols", Steps: []Step{probes(
				poke(50, harry0, "tcp", luna0, 80, true),
				poke(52, harry1, "udp", luna0, 53, true),
				poke(54, harry0, "sctp", luna0, 9003, true),
				poke(63, luna0, "tcp", harry0, 80, true),
				poke(65, luna1, "udp", harry0, 53, true),
				poke(67, luna1, "sctp", harry0, 9003, true),
			)}},
			{Name: "Should support an 'allow-gress' policy across different protocols at the specified ports", Steps: []Step{probes(
				poke(79, harry0, "tcp", cedric1, 8080, true),
				poke(83, harry1, "tcp", cedric1, 80, false),
				poke(87, harry0, "udp", cedric1, 5353, true),
				poke(91, harry1, "udp", cedric1, 53, false),
				poke(95, harry0, "sctp", cedric1, 9003, true),
				poke(99, harry1, "sctp", cedric1, 9005, false),
				poke(107, cedric0, "tcp", harry1, 80, true),
				poke(111, cedric1, "tcp", harry1, 8080, false),
				poke(115, cedric0, "udp", harry1, 5353, true),
				poke(119, cedric1, "udp", harry1, 53, false),
				poke(123, cedric0, "sctp", harry1, 9003, true),
				poke(127, cedric1, "sctp", harry1, 9005, false),
			)}},
			{Name: "Should support an 'deny-gress' policy across different protocols", Steps: []Step{
				// one patch swaps egress rules 0 and 1 and ingress rules 0 and 1
				after(change(SwapRules{Line: 146, Policy: "default", Gress: Egress, I: 0, J: 1}, SwapRules{Line: 146, Policy: "default", Gress: Ingress, I: 0, J: 1}),
					poke(150, harry0, "tcp", luna1, 80, false),
					poke(152, harry1, "udp", luna1, 53, false),
					poke(154, harry0, "sctp", luna1, 9003, false),
					poke(163, luna0, "tcp", harry1, 80, false),
					poke(165, luna1, "udp", harry1, 53, false),
					poke(167, luna1, "sctp", harry1, 9003, false),
				),
			}},
			{Name: "Should support a 'deny-gress' policy across different protocols at the specified ports", Steps: []Step{probes(
				poke(179, harry0, "tcp", draco0, 80, false),
				poke(183, harry1, "tcp", draco0, 8080, true),
				poke(187, harry0, "udp", draco0, 53, false),
				poke(191, harry1, "udp", draco0, 5353, true),
				poke(195, harry0, "sctp", draco0, 9003, false),
				poke(199, harry1, "sctp", draco0, 9005, true),
				poke(207, draco0, "tcp", harry0, 80, false),
				poke(211, draco1, "tcp", harry0, 8080, true),
				poke(215, draco0, "udp", harry0, 53, false),
				poke(219, draco1, "udp", harry0, 5353, true),
				poke(223, draco0, "sctp", harry0, 9003, false),
				poke(227, draco1, "sctp", harry0, 9005, true),
			)}},
		},
	}
}

func baselineIngressSCTP() Scenario {
	features, manifests := standard("base/baseline_tier/standard-ingress-sctp-rules.yaml")
	return Scenario{
		Name:      "CNPBaselineTierIngressSCTP",
		File:      "tests/baseline-admin-network-policy-standard-ingress-sctp-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected", Steps: []Step{probes(
				poke(48, harry0, "sctp", luna0, 9003, true),
				poke(50, harry1, "sctp", luna0, 9005, true),
			)}},
			{Name: "Should support an 'allow-ingress' policy for SCTP protocol at the specified port", Steps: []Step{probes(
				poke(60, cedric0, "sctp", luna1, 9003, true),
				poke(64, cedric1, "sctp", luna1, 9005, false),
			)}},
			{Name: "Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 78, Policy: "default", Gress: Ingress, I: 0, J: 1}),
					poke(82, harry0, "sctp", luna1, 9003, false),
					poke(85, harry1, "sctp", luna1, 9005, false),
				),
			}},
			{Name: "Should support a 'deny-ingress' policy for SCTP protocol at the specified port", Steps: []Step{probes(
				poke(95, draco0, "sctp", luna0, 9003, false),
				poke(99, draco1, "sctp", luna0, 9005, true),
			)}},
		},
	}
}

func baselineIngressTCP() Scenario {
	features, manifests := standard("base/baseline_tier/standard-ingress-tcp-rules.yaml")
	return Scenario{
		Name:      "CNPBaselineTierIngressTCP",
		File:      "tests/baseline-admin-network-policy-standard-ingress-tcp-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected", Steps: []Step{probes(
				poke(48, luna0, "tcp", harry0, 80, true),
				poke(50, luna1, "tcp", harry0, 8080, true),
			)}},
			{Name: "Should support an 'allow-ingress' policy for TCP protocol at the specified port", Steps: []Step{probes(
				poke(60, cedric0, "tcp", harry1, 80, true),
				poke(64, cedric1, "tcp", harry1, 8080, false),
			)}},
			{Name: "Should not affect egress traffic when only ingress rules are specified", Steps: []Step{probes(
				poke(78, harry0, "tcp", luna0, 80, true),
				poke(85, harry1, "tcp", draco0, 80, true),
			)}},
			{Name: "Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 99, Policy: "default", Gress: Ingress, I: 0, J: 1}),
					poke(103, luna0, "tcp", harry1, 80, false),
					poke(106, luna1, "tcp", harry1, 8080, false),
				),
			}},
			{Name: "Should support a 'deny-ingress' policy for TCP protocol at the specified port", Steps: []Step{probes(
				poke(116, draco0, "tcp", harry0, 80, false),
				poke(120, draco1, "tcp", harry0, 8080, true),
			)}},
		},
	}
}

func baselineIngressUDP() Scenario {
	features, manifests := standard("base/baseline_tier/standard-ingress-udp-rules.yaml")
	return Scenario{
		Name:      "CNPBaselineTierIngressUDP",
		File:      "tests/baseline-admin-network-policy-standard-ingress-udp-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected", Steps: []Step{probes(
				poke(48, luna0, "udp", cedric0, 53, true),
				poke(50, luna1, "udp", cedric0, 5353, true),
			)}},
			{Name: "Should support an 'allow-ingress' policy for UDP protocol at the specified port", Steps: []Step{probes(
				poke(60, harry0, "udp", cedric1, 53, true),
				poke(64, harry1, "udp", cedric1, 5353, false),
			)}},
			{Name: "Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 78, Policy: "default", Gress: Ingress, I: 0, J: 1}),
					poke(82, luna0, "udp", cedric1, 53, false),
					poke(85, luna1, "udp", cedric1, 5353, false),
				),
			}},
			{Name: "Should support a 'deny-ingress' policy for UDP protocol at the specified port", Steps: []Step{probes(
				poke(95, draco0, "udp", cedric0, 5353, false),
				poke(99, draco1, "udp", cedric0, 53, true),
			)}},
		},
	}
}

func baselinePodSelector() Scenario {
	features, manifests := standard("base/baseline_tier/standard-pod-selector-rules.yaml")
	return Scenario{
		Name:      "CNPBaselineTierPodSelector",
		File:      "tests/baseline-admin-network-policy-standard-pod-selector-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support pod selectors in egress peers", Steps: []Step{probes(
				poke(49, harry0, "tcp", luna0, 8080, false),
				poke(53, harry0, "tcp", luna0, 80, true),
				poke(59, harry1, "tcp", luna1, 80, false),
			)}},
			{Name: "Should support pod selectors in ingress peers", Steps: []Step{
				probes(
					poke(73, draco1, "tcp", harry1, 80, false),
					poke(79, draco0, "tcp", harry0, 80, true),
				),
				after(change(SetPodLabel{Line: 83, Pod: cedric0, Key: conformanceRoleLabel, Value: "blocked"}),
					poke(84, cedric0, "tcp", harry0, 80, false),
					poke(87, cedric1, "tcp", harry0, 80, true),
				),
				after(change(RemovePodLabel{Line: 90, Pod: cedric0, Key: conformanceRoleLabel}),
					poke(91, cedric0, "tcp", harry0, 80, true),
				),
				after(change(SetPodLabel{Line: 94, Pod: cedric1, Key: conformanceRoleLabel, Value: "blocked"}),
					poke(95, cedric1, "tcp", harry0, 80, false),
				),
				cleanup(
					RemovePodLabel{Line: 67, Pod: cedric0, Key: conformanceRoleLabel},
					RemovePodLabel{Line: 68, Pod: cedric1, Key: conformanceRoleLabel},
				),
			}},
			{Name: "Should support pod selectors in the subject", Steps: []Step{
				probes(
					poke(110, draco0, "tcp", luna1, 80, true),
				),
				after(change(SetPodLabel{Line: 118, Pod: luna0, Key: conformanceRoleLabel, Value: "restricted"}),
					poke(119, luna0, "tcp", draco0, 80, false),
					poke(122, luna1, "tcp", draco0, 80, true),
				),
				after(change(RemovePodLabel{Line: 125, Pod: luna0, Key: conformanceRoleLabel}),
					poke(126, luna0, "tcp", draco0, 80, true),
				),
				after(change(SetPodLabel{Line: 129, Pod: luna1, Key: conformanceRoleLabel, Value: "restricted"}),
					poke(130, luna1, "tcp", draco0, 80, false),
				),
				cleanup(
					RemovePodLabel{Line: 102, Pod: luna0, Key: conformanceRoleLabel},
					RemovePodLabel{Line: 103, Pod: luna1, Key: conformanceRoleLabel},
				),
			}},
		},
	}
}

func baselinePortRange() Scenario {
	features, manifests := standard("base/baseline_tier/standard-port-range-rules-combined.yaml")
	return Scenario{
		Name:      "CNPBaselineTierPortRange",
		File:      "tests/baseline-admin-network-policy-standard-port-range-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support egress port range rules across different protocols", Steps: []Step{probes(
				poke(47, harry0, "tcp", luna0, 80, true),
				poke(50, harry0, "tcp", luna0, 8080, true),
				poke(53, harry1, "udp", luna0, 53, false),
				poke(59, harry0, "udp", cedric0, 53, true),
				poke(62, harry0, "udp", cedric0, 5353, true),
				poke(65, harry1, "tcp", cedric0, 80, false),
				poke(71, harry0, "sctp", draco0, 9003, true),
				poke(74, harry0, "sctp", draco0, 9005, true),
				poke(77, harry1, "tcp", draco0, 80, false),
			)}},
			{Name: "Should support ingress port range rules across different protocols", Steps: []Step{probes(
				poke(88, luna0, "tcp", harry0, 80, true),
				poke(91, luna0, "tcp", harry0, 8080, true),
				poke(94, luna1, "udp", harry0, 53, false),
				poke(99, cedric0, "udp", harry0, 53, true),
				poke(102, cedric0, "udp", harry0, 5353, true),
				poke(105, cedric1, "tcp", harry0, 80, false),
				poke(110, draco0, "sctp", harry0, 9003, true),
				poke(113, draco0, "sctp", harry0, 9005, true),
				poke(116, draco1, "tcp", harry0, 80, false),
			)}},
		},
	}
}

func baselineSamePriority() Scenario {
	features, manifests := standard("base/baseline_tier/standard-same-priority.yaml")
	return Scenario{
		Name:      "CNPBaselineTierSamePriority",
		File:      "tests/baseline-admin-network-policy-standard-same-priority.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should deny traffic in both directions for each same-priority policy", Steps: []Step{probes(
				poke(60, draco0, "tcp", harry1, 80, false),
				poke(63, harry0, "tcp", draco1, 80, false),
				poke(66, cedric0, "tcp", harry1, 80, false),
				poke(69, harry1, "tcp", cedric1, 80, false),
				poke(72, draco1, "tcp", cedric1, 8080, false),
				poke(75, cedric1, "tcp", draco1, 8080, false),
			)}},
			{Name: "Should not apply one same-priority policy's rules to another policy's subject", Steps: []Step{probes(
				poke(83, draco0, "tcp", harry1, 8080, true),
				poke(86, harry0, "tcp", draco1, 8080, true),
				poke(91, draco1, "tcp", cedric1, 80, true),
				poke(94, cedric0, "tcp", draco1, 80, true),
			)}},
			{Name: "Should not affect traffic matching no same-priority policy", Steps: []Step{probes(
				poke(101, luna0, "tcp", harry1, 80, true),
				poke(103, harry0, "tcp", luna1, 80, true),
			)}},
		},
	}
}
