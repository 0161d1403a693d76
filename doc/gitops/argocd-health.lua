-- Argo CD health check for berth.dev/ModelDeployment (see doc/gitops/README.md).
-- Healthy: Ready=True for the current generation. Suspended: scaled to 0.
-- Degraded: phase Failed or Degraded. Progressing: everything else.
local hs = {}
local status = obj.status
if status == nil or status.observedGeneration == nil
    or status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Berth to observe the latest spec"
  return hs
end
local ready = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
local words = status.phase or "Unknown"
if ready ~= nil then
  words = ready.reason .. ": " .. (ready.message or "")
end
if status.phase == "Stopped" then
  hs.status = "Suspended"
  hs.message = "Scaled to 0 replicas: the model is unloaded"
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = words
elseif status.phase == "Failed" or status.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = words
else
  hs.status = "Progressing"
  hs.message = words
end
return hs
