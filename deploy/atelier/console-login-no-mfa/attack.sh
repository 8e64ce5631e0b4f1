#!/bin/sh
# An AWS console sign-in with a password only, in a test account (never a
# production one). The aws commands create an IAM user with a console password
# and no MFA device; the sign-in itself is done in a browser, which CloudTrail
# records as a ConsoleLogin event with MFAUsed=No. Delete the user afterwards.
# Needs the aws CLI with IAM rights in the test account.
# Usage: sh attack.sh <password>    then sign in at the URL printed
set -eu
password=${1:?usage: sh attack.sh <password>}
user=peregrine-atelier-nomfa
account=$(aws sts get-caller-identity --query Account --output text)
aws iam create-user --user-name "$user" --tags Key=purpose,Value=peregrine-atelier
aws iam create-login-profile --user-name "$user" --password "$password" --no-password-reset-required
echo "now sign in as $user at https://$account.signin.aws.amazon.com/console (no MFA device exists)"
echo "then clean up: aws iam delete-login-profile --user-name $user && aws iam delete-user --user-name $user"
echo "console-login-no-mfa: expect one 'AWS console login without MFA'"
