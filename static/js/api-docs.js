// Starts Swagger UI on the schema named by the container's data-schema-url (no inline script:
// the Content Security Policy allows only our own script files).
window.addEventListener("DOMContentLoaded", function () {
  const container = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: container.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
  });
});
