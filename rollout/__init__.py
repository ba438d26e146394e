"""Safe rollout of policies: an operator's view of each (campaign, agent)'s versions, with what
they earned, and the commands that roll back, pin and unpin (``python -m rollout``)."""
