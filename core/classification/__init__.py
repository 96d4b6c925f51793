"""Classification (POLICY.md §3): a complaint's category and severity from the policy's rules,
with the words that decided. Depends on nothing but the rules it is given."""
