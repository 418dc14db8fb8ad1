"""Who may use the dashboard: active staff accounts. Its own login page says so: a non-staff
account with the right password is told it has no access, not that its password is wrong
(Django's admin login says the latter). The project's LOGIN_URL is this page; the admin site
keeps its own."""

from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.decorators import user_passes_test
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.urls import reverse_lazy

NO_ACCESS = (
    "This account has no access to the dashboard: it is not a staff account. "
    "Ask an administrator to give it staff access."
)


def is_staff(user) -> bool:
    return user.is_active and user.is_staff


# Every dashboard view: anyone else goes to the login page (settings.LOGIN_URL), `next` kept.
staff_only = user_passes_test(is_staff)


class StaffLoginForm(AdminAuthenticationForm):
    """The admin's login form (staff accounts only), saying what is wrong when an account is
    not staff: Django's own tells a non-staff user with the right password that the password
    is wrong."""

    error_messages = {**AdminAuthenticationForm.error_messages, "no_access": NO_ACCESS}

    def confirm_login_allowed(self, user):
        if user.is_active and not user.is_staff:
            raise ValidationError(self.error_messages["no_access"], code="no_access")
        super().confirm_login_allowed(user)


staff_login = LoginView.as_view(
    authentication_form=StaffLoginForm,
    template_name="image_ranking/login.html",
    next_page=reverse_lazy("image_ranking:dashboard"),
)
