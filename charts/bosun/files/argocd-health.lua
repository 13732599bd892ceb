-- Argo CD health of a Bosun AgentTask: argocd-cm key resource.customizations.health.bosun.dev_AgentTask
-- (docs/observability.md; the chart renders it with argocdHealth.render=true).
--   Progressing  the operator has not started the task yet, or works on it (Planning, Executing, Verifying)
--   Suspended    a proposal awaits approval: a person must act (kubectl describe agenttask NAME)
--   Healthy      Succeeded
--   Degraded     it ended without doing what was asked: Failed, Denied, Expired, Cancelled
-- The message is the task's own one-line status.message ("awaiting 1 of 2 approvals", why it failed).
local hs = {}
local status = obj.status or {}
local generation = obj.metadata.generation or 0
if status.phase == nil or (status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "waiting for the Bosun operator to start the task"
  return hs
end
local phase = status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "AwaitingApproval" then
  hs.status = "Suspended"
elseif phase == "Failed" or phase == "Denied" or phase == "Expired" or phase == "Cancelled" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = phase .. ": " .. (status.message or "")
return hs
