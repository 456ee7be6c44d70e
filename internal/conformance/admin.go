package conformance

import "sigs.k8s.io/network-policy-api/apis/v1beta1"

// The Admin tier tests of conformance/tests (admin-network-policy-*.go):
// each probe is poke(line of the PokeServer call, client, protocol,
// server, port, shouldConnect); each mutation names the line of the call
// that makes it and says, in a comment, what upstream's code does.

func adminScenarios() []Scenario {
	return []Scenario{
		adminEgressNamedPort(), adminEgressNodePeers(), adminIngressNamedPort(),
		adminEgressInlineCIDRPeers(), adminEgressSCTP(), adminEgressTCP(), adminEgressUDP(),
		adminGress(), adminIngressSCTP(), adminIngressTCP(), adminIngressUDP(), adminIntegration(),
		adminPodSelector(), adminPortRange(), adminPriorityField(), adminSamePriority(),
	}
}

func adminEgressNamedPort() Scenario {
	return Scenario{
		Name:      "CNPAdminTierEgressNamedPort",
		File:      "tests/admin-network-policy-experimental-egress-rules.go",
		Features:  []string{FeatureClusterNetworkPolicy, FeatureNamedPorts},
		Manifests: []string{"base/admin_tier/standard-egress-tcp-rules.yaml"},
		Subtests: []Subtest{
			{Name: "Should support an 'allow-egress' policy for named port", Steps: []Step{
				// namedPortRule := mutate.Spec.Egress[5]; namedPortRule.Protocols = [{DestinationNamedPort: "web"}]
				after(change(SetRuleNamedPort{Line: 59, Policy: "egress-tcp", Gress: Egress, Index: 5, Port: "web"}),
					poke(63, harry0, "tcp", cedric1, 80, true),
					poke(67, harry1, "tcp", cedric1, 8080, false),
				),
			}},
		},
	}
}

func adminEgressNodePeers() Scenario {
	return Scenario{
		Name:      "CNPAdminTierEgressNodePeers",
		File:      "tests/admin-network-policy-experimental-egress-rules.go",
		Features:  []string{FeatureClusterNetworkPolicy, FeatureEgressNodePeers},
		Manifests: []string{"base/admin_tier/experimental-egress-selector-rules.yaml"},
		Subtests: []Subtest{
			{Name: "Should support an 'allow-egress' rule policy for egress-node-peer", Steps: []Step{probes(
				poke(89, harry1, "tcp", centaur1, HostNetworkPort(0), true),
			)}},
			{Name: "Should support a 'pass-egress' rule policy for egress-node-peer", Steps: []Step{probes(
				poke(96, harry1, "udp", centaur1, HostNetworkPort(2), true),
			)}},
			{Name: "Should support a 'deny-egress' rule policy for egress-node-peer", Steps: []Step{probes(
				poke(102, harry1, "tcp", centaur1, HostNetworkPort(1), false),
				poke(104, harry1, "udp", centaur1, HostNetworkPort(4), false),
				poke(106, harry1, "sctp", centaur1, HostNetworkPort(6), false),
			)}},
		},
	}
}

func adminIngressNamedPort() Scenario {
	return Scenario{
		Name:      "CNPAdminTierIngressNamedPort",
		File:      "tests/admin-network-policy-experimental-ingress-rules.go",
		Features:  []string{FeatureClusterNetworkPolicy, FeatureNamedPorts},
		Manifests: []string{"base/admin_tier/standard-ingress-udp-rules.yaml"},
		Subtests: []Subtest{
			{Name: "Should support an 'allow-ingress' policy for named port", Steps: []Step{
				// dnsPortRule := ....Spec.Ingress[5]; dnsPortRule.Protocols = [{DestinationNamedPort: "dns"}]
				after(change(SetRuleNamedPort{Line: 52, Policy: "ingress-udp", Gress: Ingress, Index: 5, Port: "dns"}),
					poke(56, harry0, "udp", cedric1, 53, true),
					poke(60, harry1, "udp", cedric1, 5353, false),
				),
			}},
		},
	}
}

func adminEgressInlineCIDRPeers() Scenario {
	features, manifests := standard("base/admin_tier/standard-egress-inline-cidr-rules.yaml")
	return Scenario{
		Name:      "CNPAdminTierEgressInlineCIDRPeers",
		File:      "tests/admin-network-policy-standard-egress-inline-cidr-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support a 'deny-egress' rule policy for egress-cidr-peer", Steps: []Step{
				probes(
					poke(50, harry1, "tcp", luna0, 80, false),
					poke(52, harry1, "udp", luna0, 53, false),
					poke(54, harry1, "sctp", luna0, 9003, false),
					poke(60, harry1, "tcp", cedric0, 80, false),
					poke(62, harry1, "udp", cedric0, 53, false),
					poke(64, harry1, "sctp", cedric0, 9003, false),
					poke(70, harry1, "tcp", draco0, 80, true),
					poke(72, harry1, "udp", draco0, 53, true),
					poke(74, harry1, "sctp", draco0, 9003, true),
				),
				// mutateNamespace.SetLabels({"conformance-house": "denied-namespace-label"})
				after(change(SetNamespaceLabels{Line: 81, Namespace: slytherin, Labels: map[string]string{"conformance-house": "denied-namespace-label"}}),
					poke(84, harry1, "tcp", draco0, 80, false),
					poke(86, harry1, "udp", draco0, 53, false),
					poke(88, harry1, "sctp", draco0, 9003, false),
				),
				// mutateNamespace.SetLabels({"conformance-house": "slytherin"})
				after(change(SetNamespaceLabels{Line: 95, Namespace: slytherin, Labels: map[string]string{"conformance-house": "slytherin"}}),
					poke(98, harry1, "tcp", draco0, 80, true),
					poke(100, harry1, "udp", draco0, 53, true),
					poke(102, harry1, "sctp", draco0, 9003, true),
				),
			}},
			{Name: "Should support an 'allow-egress' rule policy for egress-cidr-peer", Steps: []Step{
				// mutate.Spec.Egress = append([{Name: "allow-egress-to-specific-podIPs", Action: "Accept",
				//   To: [{Networks: [luna-lovegood-0 IP+mask, cedric-diggory-0 IP+mask]}]}], mutate.Spec.Egress...)
				after(change(PrependPodNetworksRule{Line: 139, Policy: "inline-cidr-as-peers-example", Name: "allow-egress-to-specific-podIPs",
					Action: v1beta1.ClusterNetworkPolicyRuleActionAccept, Pods: []PodRef{luna0, cedric0}}),
					poke(143, harry1, "tcp", luna0, 80, true),
					poke(145, harry1, "udp", luna0, 53, true),
					poke(147, harry1, "sctp", luna0, 9003, true),
					poke(149, harry1, "tcp", cedric0, 80, true),
					poke(151, harry1, "udp", cedric0, 53, true),
					poke(153, harry1, "sctp", cedric0, 9003, true),
					poke(163, harry1, "tcp", luna1, 80, false),
					poke(165, harry1, "udp", luna1, 53, false),
					poke(167, harry1, "sctp", luna1, 9003, false),
					poke(169, harry1, "tcp", cedric1, 80, false),
					poke(171, harry1, "udp", cedric1, 53, false),
					poke(173, harry1, "sctp", cedric1, 9003, false),
				),
			}},
		},
	}
}

func adminEgressSCTP() Scenario {
	features, manifests := standard("base/admin_tier/standard-egress-sctp-rules.yaml")
	return Scenario{
		Name:      "CNPAdminTierEgressSCTP",
		File:      "tests/admin-network-policy-standard-egress-sctp-rules.go",
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
				after(change(SwapRules{Line: 79, Policy: "egress-sctp", Gress: Egress, I: 0, J: 1}),
					poke(83, luna0, "sctp", harry1, 9003, false),
					poke(86, luna1, "sctp", harry1, 9005, false),
				),
			}},
			{Name: "Should support a 'deny-egress' policy for SCTP protocol at the specified port", Steps: []Step{probes(
				poke(96, luna0, "sctp", draco0, 9003, false),
				poke(100, luna1, "sctp", draco0, 9005, true),
			)}},
			{Name: "Should support an 'pass-egress' policy for SCTP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 114, Policy: "egress-sctp", Gress: Egress, I: 0, J: 2}),
					poke(118, luna0, "sctp", harry1, 9003, true),
					poke(121, luna1, "sctp", harry1, 9005, true),
				),
			}},
			{Name: "Should support a 'pass-egress' policy for SCTP protocol at the specified port", Steps: []Step{
				after(change(SwapRules{Line: 135, Policy: "egress-sctp", Gress: Egress, I: 3, J: 4}),
					poke(138, luna0, "sctp", draco0, 9003, true),
					poke(142, luna1, "sctp", draco0, 9005, true),
				),
			}},
		},
	}
}

func adminEgressTCP() Scenario {
	features, manifests := standard("base/admin_tier/standard-egress-tcp-rules.yaml")
	return Scenario{
		Name:      "CNPAdminTierEgressTCP",
		File:      "tests/admin-network-policy-standard-egress-tcp-rules.go",
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
				after(change(SwapRules{Line: 99, Policy: "egress-tcp", Gress: Egress, I: 0, J: 1}),
					poke(103, harry0, "tcp", luna1, 80, false),
					poke(106, harry1, "tcp", luna1, 8080, false),
				),
			}},
			{Name: "Should support a 'deny-egress' policy for TCP protocol at the specified port", Steps: []Step{probes(
				poke(116, harry0, "tcp", draco0, 80, false),
				poke(120, harry1, "tcp", draco0, 8080, true),
			)}},
			{Name: "Should support an 'pass-egress' policy for TCP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 134, Policy: "egress-tcp", Gress: Egress, I: 0, J: 2}),
					poke(138, harry0, "tcp", luna0, 80, true),
					poke(141, harry1, "tcp", luna0, 8080, true),
				),
			}},
			{Name: "Should support a 'pass-egress' policy for TCP protocol at the specified port", Steps: []Step{
				after(change(SwapRules{Line: 155, Policy: "egress-tcp", Gress: Egress, I: 3, J: 4}),
					poke(158, harry0, "tcp", draco0, 80, true),
					poke(162, harry1, "tcp", draco0, 8080, true),
				),
			}},
		},
	}
}

func adminEgressUDP() Scenario {
	features, manifests := standard("base/admin_tier/standard-egress-udp-rules.yaml")
	return Scenario{
		Name:      "CNPAdminTierEgressUDP",
		File:      "tests/admin-network-policy-standard-egress-udp-rules.go",
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
				after(change(SwapRules{Line: 79, Policy: "egress-udp", Gress: Egress, I: 0, J: 1}),
					poke(83, cedric0, "udp", luna1, 53, false),
					poke(86, cedric1, "udp", luna1, 5353, false),
				),
			}},
			{Name: "Should support a 'deny-egress' policy for UDP protocol at the specified port", Steps: []Step{probes(
				poke(96, cedric0, "udp", draco0, 5353, false),
				poke(100, cedric1, "udp", draco0, 53, true),
			)}},
			{Name: "Should support an 'pass-egress' policy for UDP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 114, Policy: "egress-udp", Gress: Egress, I: 0, J: 2}),
					poke(118, cedric0, "udp", luna1, 5353, true),
					poke(121, cedric1, "udp", luna1, 53, true),
				),
			}},
			{Name: "Should support a 'pass-egress' policy for UDP protocol at the specified port", Steps: []Step{
				after(change(SwapRules{Line: 135, Policy: "egress-udp", Gress: Egress, I: 3, J: 4}),
					poke(138, cedric0, "udp", draco0, 5353, true),
					poke(142, cedric1, "udp", draco0, 53, true),
				),
			}},
		},
	}
}

func adminGress() Scenario {
	features, manifests := standard("base/admin_tier/standard-gress-rules-combined.yaml")
	return Scenario{
		Name:      "CNPAdminTierGress",
		File:      "tests/admin-network-policy-standard-gress-rules.go",
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
				after(change(SwapRules{Line: 146, Policy: "gress-rules", Gress: Egress, I: 0, J: 1}, SwapRules{Line: 146, Policy: "gress-rules", Gress: Ingress, I: 0, J: 1}),
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
			{Name: "Should support an 'pass-gress' policy across different protocols", Steps: []Step{
				// one patch swaps egress rules 0 and 2 and ingress rules 0 and 2
				after(change(SwapRules{Line: 246, Policy: "gress-rules", Gress: Egress, I: 0, J: 2}, SwapRules{Line: 246, Policy: "gress-rules", Gress: Ingress, I: 0, J: 2}),
					poke(250, harry0, "tcp", luna0, 80, true),
					poke(255, harry0, "udp", luna0, 5353, true),
					poke(260, harry0, "sctp", luna0, 9003, true),
					poke(269, luna0, "tcp", harry0, 80, true),
					poke(272, luna1, "udp", harry0, 53, true),
					poke(275, luna1, "sctp", harry0, 9003, true),
				),
			}},
			{Name: "Should support a 'pass-gress' policy across different protocols at the specified ports", Steps: []Step{
				// one patch swaps egress rules 3 and 4 and ingress rules 3 and 4
				after(change(SwapRules{Line: 294, Policy: "gress-rules", Gress: Egress, I: 3, J: 4}, SwapRules{Line: 294, Policy: "gress-rules", Gress: Ingress, I: 3, J: 4}),
					poke(297, harry0, "tcp", draco0, 80, true),
					poke(301, harry1, "tcp", draco0, 8080, true),
					poke(305, harry0, "udp", draco0, 53, true),
					poke(309, harry1, "udp", draco0, 5353, true),
					poke(313, harry0, "sctp", draco0, 9003, true),
					poke(317, harry1, "sctp", draco0, 9005, true),
					poke(325, draco0, "tcp", harry0, 80, true),
					poke(329, draco1, "tcp", harry0, 8080, true),
					poke(333, draco0, "udp", harry0, 53, true),
					poke(337, draco1, "udp", harry0, 5353, true),
					poke(341, draco0, "sctp", harry0, 9003, true),
					poke(345, draco1, "sctp", harry0, 9005, true),
				),
			}},
		},
	}
}

func adminIngressSCTP() Scenario {
	features, manifests := standard("base/admin_tier/standard-ingress-sctp-rules.yaml")
	return Scenario{
		Name:      "CNPAdminTierIngressSCTP",
		File:      "tests/admin-network-policy-standard-ingress-sctp-rules.go",
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
				after(change(SwapRules{Line: 78, Policy: "ingress-sctp", Gress: Ingress, I: 0, J: 1}),
					poke(82, harry0, "sctp", luna1, 9003, false),
					poke(85, harry1, "sctp", luna1, 9005, false),
				),
			}},
			{Name: "Should support a 'deny-ingress' policy for SCTP protocol at the specified port", Steps: []Step{probes(
				poke(95, draco0, "sctp", luna0, 9003, false),
				poke(99, draco1, "sctp", luna0, 9005, true),
			)}},
			{Name: "Should support an 'pass-ingress' policy for SCTP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 113, Policy: "ingress-sctp", Gress: Ingress, I: 0, J: 2}),
					poke(117, harry0, "sctp", luna1, 9003, true),
					poke(120, harry1, "sctp", luna1, 9005, true),
				),
			}},
			{Name: "Should support a 'pass-ingress' policy for SCTP protocol at the specified port", Steps: []Step{
				after(change(SwapRules{Line: 134, Policy: "ingress-sctp", Gress: Ingress, I: 3, J: 4}),
					poke(137, draco0, "sctp", luna0, 9003, true),
					poke(141, draco1, "sctp", luna0, 9005, true),
				),
			}},
		},
	}
}

func adminIngressTCP() Scenario {
	features, manifests := standard("base/admin_tier/standard-ingress-tcp-rules.yaml")
	return Scenario{
		Name:      "CNPAdminTierIngressTCP",
		File:      "tests/admin-network-policy-standard-ingress-tcp-rules.go",
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
				after(change(SwapRules{Line: 99, Policy: "ingress-tcp", Gress: Ingress, I: 0, J: 1}),
					poke(103, luna0, "tcp", harry1, 80, false),
					poke(106, luna1, "tcp", harry1, 8080, false),
				),
			}},
			{Name: "Should support a 'deny-ingress' policy for TCP protocol at the specified port", Steps: []Step{probes(
				poke(116, draco0, "tcp", harry0, 80, false),
				poke(120, draco1, "tcp", harry0, 8080, true),
			)}},
			{Name: "Should support an 'pass-ingress' policy for TCP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 134, Policy: "ingress-tcp", Gress: Ingress, I: 0, J: 2}),
					poke(138, luna0, "tcp", harry0, 80, true),
					poke(141, luna1, "tcp", harry0, 8080, true),
				),
			}},
			{Name: "Should support a 'pass-ingress' policy for TCP protocol at the specified port", Steps: []Step{
				after(change(SwapRules{Line: 155, Policy: "ingress-tcp", Gress: Ingress, I: 3, J: 4}),
					poke(158, draco0, "tcp", harry0, 80, true),
					poke(162, draco1, "tcp", harry0, 8080, true),
				),
			}},
		},
	}
}

func adminIngressUDP() Scenario {
	features, manifests := standard("base/admin_tier/standard-ingress-udp-rules.yaml")
	return Scenario{
		Name:      "CNPAdminTierIngressUDP",
		File:      "tests/admin-network-policy-standard-ingress-udp-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected", Steps: []Step{probes(
				poke(49, luna0, "udp", cedric0, 53, true),
				poke(51, luna1, "udp", cedric0, 5353, true),
			)}},
			{Name: "Should support an 'allow-ingress' policy for UDP protocol at the specified port", Steps: []Step{probes(
				poke(61, harry0, "udp", cedric1, 53, true),
				poke(65, harry1, "udp", cedric1, 5353, false),
			)}},
			{Name: "Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 79, Policy: "ingress-udp", Gress: Ingress, I: 0, J: 1}),
					poke(83, luna0, "udp", cedric1, 53, false),
					poke(86, luna1, "udp", cedric1, 5353, false),
				),
			}},
			{Name: "Should support a 'deny-ingress' policy for UDP protocol at the specified port", Steps: []Step{probes(
				poke(96, draco0, "udp", cedric0, 5353, false),
				poke(100, draco1, "udp", cedric0, 53, true),
			)}},
			{Name: "Should support an 'pass-ingress' policy for UDP protocol; ensure rule ordering is respected", Steps: []Step{
				after(change(SwapRules{Line: 114, Policy: "ingress-udp", Gress: Ingress, I: 0, J: 2}),
					poke(118, luna0, "udp", cedric1, 5353, true),
					poke(121, luna1, "udp", cedric1, 53, true),
				),
			}},
			{Name: "Should support a 'pass-ingress' policy for UDP protocol at the specified port", Steps: []Step{
				after(change(SwapRules{Line: 135, Policy: "ingress-udp", Gress: Ingress, I: 3, J: 4}),
					poke(138, draco0, "udp", cedric0, 5353, true),
					poke(142, draco1, "udp", cedric0, 53, true),
				),
			}},
		},
	}
}

func adminIntegration() Scenario {
	features, manifests := standard("base/api_integration/standard-anp-np-banp.yaml")
	return Scenario{
		Name:      "CNPAdminTierIntegration",
		File:      "tests/admin-network-policy-standard-integration.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should Deny traffic from slytherin to gryffindor respecting admin CNP", Steps: []Step{probes(
				poke(54, draco0, "tcp", harry0, 80, false),
				poke(57, draco1, "tcp", harry0, 8080, false),
			)}},
			{Name: "Should Deny traffic to slytherin from gryffindor respecting admin CNP", Steps: []Step{probes(
				poke(68, harry0, "tcp", draco0, 80, false),
				poke(71, harry1, "tcp", draco0, 8080, false),
			)}},
			{Name: "Should support a 'pass-ingress' policy for admin CNP and respect the match for network policy", Steps: []Step{
				// mutate.Spec.Ingress[0].Action = api.ClusterNetworkPolicyRuleActionPass
				after(change(SetRuleAction{Line: 82, Policy: "pass-example", Gress: Ingress, Index: 0, Action: v1beta1.ClusterNetworkPolicyRuleActionPass}),
					poke(88, draco0, "tcp", harry0, 80, true),
					poke(91, draco1, "tcp", harry0, 8080, true),
				),
			}},
			{Name: "Should support a 'pass-egress' policy for admin CNP and respect the match for network policy", Steps: []Step{
				// mutate.Spec.Egress[0].Action = api.ClusterNetworkPolicyRuleActionPass
				after(change(SetRuleAction{Line: 102, Policy: "pass-example", Gress: Egress, Index: 0, Action: v1beta1.ClusterNetworkPolicyRuleActionPass}),
					poke(108, harry0, "tcp", draco0, 80, true),
					poke(111, harry1, "tcp", draco0, 8080, true),
				),
			}},
			{Name: "Should support a 'pass-ingress' policy for admin CNP and respect the match for baseline cluster network policy", Steps: []Step{
				// s.Client.Delete(ctx, np): the NetworkPolicy gryffindor/allow-gress-from-to-slytherin-to-gryffindor
				after(change(DeleteNetworkPolicy{Line: 126, Namespace: gryffindor, Name: "allow-gress-from-to-slytherin-to-gryffindor"}),
					poke(133, draco0, "tcp", harry0, 80, false),
					poke(136, draco1, "tcp", harry0, 8080, false),
				),
			}},
			{Name: "Should support a 'pass-egress' policy for admin CNP and respect the match for baseline cluster network policy", Steps: []Step{probes(
				poke(147, harry0, "tcp", draco0, 80, false),
				poke(150, harry1, "tcp", draco0, 8080, false),
			)}},
		},
	}
}

func adminPodSelector() Scenario {
	features, manifests := standard("base/admin_tier/standard-pod-selector-rules.yaml")
	return Scenario{
		Name:      "CNPAdminTierPodSelector",
		File:      "tests/admin-network-policy-standard-pod-selector-rules.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should support pod selectors in egress peers", Steps: []Step{probes(
				poke(52, harry0, "tcp", luna0, 8080, false),
				poke(56, harry0, "tcp", luna0, 80, true),
				poke(62, harry1, "tcp", luna1, 80, false),
			)}},
			{Name: "Should support pod selectors in ingress peers", Steps: []Step{
				probes(
					poke(76, draco1, "tcp", harry1, 80, false),
					poke(82, draco0, "tcp", harry0, 80, true),
				),
				after(change(SetPodLabel{Line: 86, Pod: cedric0, Key: conformanceRoleLabel, Value: "blocked"}),
					poke(87, cedric0, "tcp", harry0, 80, false),
					poke(90, cedric1, "tcp", harry0, 80, true),
				),
				after(change(RemovePodLabel{Line: 93, Pod: cedric0, Key: conformanceRoleLabel}),
					poke(94, cedric0, "tcp", harry0, 80, true),
				),
				after(change(SetPodLabel{Line: 97, Pod: cedric1, Key: conformanceRoleLabel, Value: "blocked"}),
					poke(98, cedric1, "tcp", harry0, 80, false),
				),
				cleanup(
					RemovePodLabel{Line: 70, Pod: cedric0, Key: conformanceRoleLabel},
					RemovePodLabel{Line: 71, Pod: cedric1, Key: conformanceRoleLabel},
				),
			}},
			{Name: "Should support pod selectors in the subject", Steps: []Step{
				probes(
					poke(113, draco0, "tcp", luna1, 80, true),
				),
				after(change(SetPodLabel{Line: 121, Pod: luna0, Key: conformanceRoleLabel, Value: "restricted"}),
					poke(122, luna0, "tcp", draco0, 80, false),
					poke(125, luna1, "tcp", draco0, 80, true),
				),
				after(change(RemovePodLabel{Line: 128, Pod: luna0, Key: conformanceRoleLabel}),
					poke(129, luna0, "tcp", draco0, 80, true),
				),
				after(change(SetPodLabel{Line: 132, Pod: luna1, Key: conformanceRoleLabel, Value: "restricted"}),
					poke(133, luna1, "tcp", draco0, 80, false),
				),
				cleanup(
					RemovePodLabel{Line: 105, Pod: luna0, Key: conformanceRoleLabel},
					RemovePodLabel{Line: 106, Pod: luna1, Key: conformanceRoleLabel},
				),
			}},
		},
	}
}

func adminPortRange() Scenario {
	features, manifests := standard("base/admin_tier/standard-port-range-rules-combined.yaml")
	return Scenario{
		Name:      "CNPAdminTierPortRange",
		File:      "tests/admin-network-policy-standard-port-range-rules.go",
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

func adminPriorityField() Scenario {
	features, manifests := standard("base/admin_tier/standard-priority-field.yaml")
	return Scenario{
		Name:      "CNPAdminTierPriorityField",
		File:      "tests/admin-network-policy-standard-priority.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should Deny traffic from slytherin to gryffindor respecting admin CNP", Steps: []Step{probes(
				poke(48, draco0, "tcp", harry0, 80, false),
				poke(51, draco1, "tcp", harry0, 8080, false),
			)}},
			{Name: "Should Deny traffic to slytherin from gryffindor respecting admin CNP", Steps: []Step{probes(
				poke(62, harry0, "tcp", draco0, 80, false),
				poke(65, harry1, "tcp", draco0, 8080, false),
			)}},
			{Name: "Should respect admin CNP priority field; thus passing both ingress and egress traffic over to baseline CNP", Steps: []Step{
				// mutate.Spec.Priority = 40
				after(change(SetPriority{Line: 75, Policy: "old-priority-60-new-priority-40-example", Priority: 40}),
					poke(81, draco0, "tcp", harry0, 80, true),
					poke(84, draco1, "tcp", harry0, 8080, true),
					poke(92, harry0, "tcp", draco0, 80, true),
					poke(95, harry1, "tcp", draco0, 8080, true),
				),
			}},
		},
	}
}

func adminSamePriority() Scenario {
	features, manifests := standard("base/admin_tier/standard-same-priority.yaml")
	return Scenario{
		Name:      "CNPAdminTierSamePriority",
		File:      "tests/admin-network-policy-standard-same-priority.go",
		Features:  features,
		Manifests: manifests,
		Subtests: []Subtest{
			{Name: "Should deny traffic in both directions for each same-priority policy", Steps: []Step{probes(
				poke(59, draco0, "tcp", harry0, 80, false),
				poke(62, harry0, "tcp", draco0, 80, false),
				poke(65, cedric0, "tcp", harry0, 80, false),
				poke(68, harry1, "tcp", cedric0, 80, false),
				poke(71, draco1, "tcp", cedric0, 8080, false),
				poke(74, cedric1, "tcp", draco0, 8080, false),
			)}},
			{Name: "Should not apply one same-priority policy's rules to another policy's subject", Steps: []Step{probes(
				poke(82, draco0, "tcp", harry0, 8080, true),
				poke(85, harry0, "tcp", draco0, 8080, true),
				poke(90, draco1, "tcp", cedric0, 80, true),
				poke(93, cedric0, "tcp", draco0, 80, true),
			)}},
			{Name: "Should not affect traffic matching no same-priority policy", Steps: []Step{probes(
				poke(100, luna0, "tcp", harry0, 80, true),
				poke(102, harry1, "tcp", luna0, 80, true),
			)}},
		},
	}
}
