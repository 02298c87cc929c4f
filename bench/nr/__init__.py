"""No-reference quality: `srbench score`, `srbench iqa eval` and the IQA databases."""
