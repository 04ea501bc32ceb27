"""Policy: consent records, risk tiers, rules, waivers and manifests."""
